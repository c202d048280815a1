"""The reference memory scorer on crafted memories: signs, strengths, profile, pseudo-chunks."""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt
import pytest

from streams.eval.scorer import (
    ItemSpace,
    MemoryVectors,
    eval_item_text,
    event_memory,
    memory_scores,
    unit_rows,
)
from tests.unit.fake_embedding import fake_embed


def space_of(vectors: npt.ArrayLike) -> ItemSpace:
    matrix = unit_rows(vectors)
    return ItemSpace(tuple(f"i{n}" for n in range(matrix.shape[0])), matrix)


# Three orthogonal items and one halfway between the first two.
SPACE = space_of([[1, 0, 0], [0, 1, 0], [0, 0, 1], [1, 1, 0]])


def test_a_liked_chunk_lifts_its_items_and_a_disliked_one_sinks_them() -> None:
    memory = MemoryVectors(
        unit_rows([[1, 0, 0], [0, 1, 0]]),
        np.array([0.8, -0.5]),  # likes i0, dislikes i1
    )
    scores = memory_scores(SPACE, memory, profile_weight=1.0)
    assert scores == pytest.approx([0.8, -0.5, 0.0, (0.8 - 0.5) / np.sqrt(2)])
    assert list(np.argsort(-scores)) == [0, 3, 2, 1]


def test_the_profile_adds_w_times_its_cosine() -> None:
    memory = MemoryVectors(unit_rows([[1, 0, 0]]), np.array([0.2]), unit_rows([[0, 0, 2]])[0])
    assert memory_scores(SPACE, memory, 0.0) == pytest.approx([0.2, 0, 0, 0.2 / np.sqrt(2)])
    assert memory_scores(SPACE, memory, 0.5) == pytest.approx([0.2, 0, 0.5, 0.2 / np.sqrt(2)])


def test_scores_equal_the_formula_term_by_term() -> None:
    rng = np.random.default_rng(7)
    space = space_of(rng.normal(size=(20, 16)))
    chunks = unit_rows(rng.normal(size=(5, 16)))
    strengths = rng.uniform(0.05, 1.0, size=5)
    signs = np.array([1, -1, 1, 1, -1])
    profile = unit_rows(rng.normal(size=(1, 16)))[0]
    scores = memory_scores(space, MemoryVectors(chunks, signs * strengths, profile), 0.7)
    for n, item in enumerate(space.vectors):
        cos = [float(item @ c) for c in chunks]
        expected = sum(s * w * c for s, w, c in zip(signs, strengths, cos, strict=True))
        assert scores[n] == pytest.approx(expected + 0.7 * float(item @ profile), abs=1e-5)


def test_an_empty_memory_scores_every_item_zero() -> None:
    assert not memory_scores(SPACE, MemoryVectors.empty(3), 1.0).any()


def rating(item: str, value: float, n: int = 0) -> dict[str, Any]:
    return {"event_id": f"e{n}{item}", "tenant": "t", "user_id": "u", "item_id": item,
            "type": "rate", "value": value, "ts": 1000 + n}  # fmt: skip


def test_events_become_pseudo_chunks_weighted_as_evidence() -> None:
    events = [rating("i0", 5.0), rating("i1", 1.0, 1), rating("i2", 3.0, 2), rating("zz", 5.0, 3)]
    memory = event_memory(events, SPACE)
    # 5 stars -> +1, 1 star -> -1, 3 stars teaches nothing, an unknown item is skipped.
    assert memory.weights == pytest.approx([1.0, -1.0])
    assert memory.vectors == pytest.approx(SPACE.vectors[[0, 1]])
    assert memory.profile is None
    like = {**rating("i2", 0.0, 4), "type": "like"}
    del like["value"]
    assert event_memory([like], SPACE).weights == pytest.approx([1.0])
    assert event_memory([rating("i2", 3.0)], SPACE).vectors.shape == (0, 3)


def test_the_item_text_is_title_year_genres_and_decade() -> None:
    row = {"tenant": "t", "item_id": "1", "title": "Toy Story",
           "attributes": {"genres": ["Animation", "Comedy"], "year": 1995}, "ts": 0}  # fmt: skip
    assert eval_item_text(row) == "Toy Story (1995). Animation, Comedy, 1990s"
    bare = {"tenant": "t", "item_id": "2", "title": "Untitled", "attributes": {}, "ts": 0}
    assert eval_item_text(bare) == "Untitled"


def test_the_item_space_embeds_each_catalogue_row_once_in_order() -> None:
    rows = [{"tenant": "t", "item_id": str(n), "title": f"Film {n}", "ts": 0} for n in range(4)]
    space = ItemSpace.embed(rows, fake_embed)
    assert space.item_ids == ("0", "1", "2", "3")
    assert np.linalg.norm(space.vectors, axis=1) == pytest.approx(np.ones(4), abs=1e-6)
    assert space.vectors[2] == pytest.approx(np.array(fake_embed(["Film 2"])[0]), abs=1e-6)
    with pytest.raises(ValueError, match="duplicate"):
        ItemSpace.embed(rows + rows[:1], fake_embed)
