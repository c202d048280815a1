"""The reference scorer's formula on crafted memories whose ranks are known by hand."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from streams.eval.scorer import (
    ItemSpace,
    MemoryVectors,
    ReferenceScorer,
    ScorerConfig,
    event_memory,
    standardised,
    unit_rows,
)

# Four items; content vectors along three axes, collaborative vectors in 2-d.
SPACE = ItemSpace(("i0", "i1", "i2", "i3"),
                  unit_rows([[1, 0, 0], [0, 1, 0], [0, 0, 1], [1, 1, 0]]))  # fmt: skip
COLLAB = np.array([[1, 0], [0, 1], [1, 1], [0, 0]], dtype=np.float32)  # i3: nobody engaged
ONLY_COLLAB = ScorerConfig(content=0.0, collab=1.0, popularity=0.0, half_life_events=1.0)


def memory(*evidence: tuple[str, float]) -> MemoryVectors:
    return MemoryVectors.empty(3, tuple(evidence))


def test_the_collab_query_halves_per_event_of_age_and_weighs_engagement() -> None:
    scorer = ReferenceScorer(SPACE, COLLAB, np.zeros(4), ONLY_COLLAB)
    # Newest first: i0 (3 stars: w 0 -> 1), then i1 (w 0 -> 1, half as recent with H = 1).
    assert scorer.collab_query(memory(("i0", 0.0), ("i1", 0.0))) == pytest.approx([1.0, 0.5])
    # A 5-star pulls 1.5, a 1-star 0.5 (what one rates next is co-watched either way).
    assert scorer.collab_query(memory(("i0", 1.0), ("i1", -1.0))) == pytest.approx([1.5, 0.25])
    # An item outside the space contributes nothing, but still ages the ones behind it.
    assert scorer.collab_query(memory(("zz", 1.0), ("i1", 0.0))) == pytest.approx([0.0, 0.5])


def test_recent_evidence_ranks_its_co_engaged_items_first() -> None:
    scorer = ReferenceScorer(SPACE, COLLAB, np.zeros(4), ONLY_COLLAB)
    scores = scorer.scores(memory(("i0", 0.0), ("i1", 0.0)))
    # q = (1, 0.5): cos i2 = 0.949 > i0 = 0.894 > i1 = 0.447 > i3 = 0 (no vector).
    assert list(np.argsort(-scores)) == [2, 0, 1, 3]
    flipped = scorer.scores(memory(("i1", 0.0), ("i0", 0.0)))
    assert list(np.argsort(-flipped)) == [2, 1, 0, 3]


def test_components_are_standardised_and_summed_with_their_weights() -> None:
    rng = np.random.default_rng(5)
    space = ItemSpace(tuple(f"i{n}" for n in range(30)), unit_rows(rng.normal(size=(30, 8))))
    collab = rng.normal(size=(30, 4)).astype(np.float32)
    counts = rng.integers(0, 50, size=30).astype(np.float64)
    cfg = ScorerConfig(content=0.3, collab=1.0, popularity=0.7, pool=0)
    scorer = ReferenceScorer(space, collab, counts, cfg)
    mem = MemoryVectors(unit_rows(rng.normal(size=(3, 8))), np.array([0.9, -0.4, 0.2]),
                        unit_rows(rng.normal(size=(1, 8)))[0],
                        (("i3", 1.0), ("i7", -0.5), ("i1", 0.0)))  # fmt: skip
    content = space.vectors.astype(np.float64) @ mem.query(cfg.profile_weight)
    content /= np.linalg.norm(mem.query(cfg.profile_weight))
    unit = unit_rows(collab).astype(np.float64)
    d = 0.5 ** (1 / cfg.half_life_events)
    q = 1.5 * unit[3] + d * 0.75 * unit[7] + d * d * 1.0 * unit[1]
    collab_cos = unit @ q / np.linalg.norm(q)
    expected = (0.3 * standardised(content) + standardised(collab_cos)
                + 0.7 * standardised(np.log1p(counts)))  # fmt: skip
    assert scorer.scores(mem) == pytest.approx(expected, abs=1e-9)
    parts = scorer.components(mem)
    for values in parts.values():
        assert values.mean() == pytest.approx(0.0, abs=1e-9)
        assert values.std() == pytest.approx(1.0)


def test_standardising_a_constant_gives_zeros() -> None:
    assert not standardised(np.full(5, 3.0)).any()
    assert standardised([1.0, 3.0]) == pytest.approx([-1.0, 1.0])


def test_codebook_candidates_rank_above_every_other_item_in_score_order() -> None:
    counts = np.array([1.0, 100.0, 10.0, 1000.0])
    scorer = ReferenceScorer(SPACE, COLLAB, counts, ScorerConfig(content=0, collab=0))
    plain = scorer.scores(memory())
    assert list(np.argsort(-plain)) == [3, 1, 2, 0]  # popularity alone
    pooled = scorer.scores(memory(), pool=["i0", "i2", "unknown"])
    assert list(np.argsort(-pooled)) == [2, 0, 3, 1]  # the pool first, each part by score


def test_popularity_is_the_same_term_for_every_memory() -> None:
    cfg = ScorerConfig(content=0.0, collab=0.0, popularity=1.0)
    scorer = ReferenceScorer(SPACE, COLLAB, np.array([5.0, 1.0, 3.0, 0.0]), cfg)
    one = scorer.scores(memory(("i0", 1.0)))
    other = scorer.scores(MemoryVectors(unit_rows([[0, 1, 0]]), np.array([1.0])))
    assert one == pytest.approx(other)
    assert list(np.argsort(-one)) == [0, 2, 1, 3]


def test_a_memory_without_chunks_or_evidence_scores_only_popularity() -> None:
    scorer = ReferenceScorer(SPACE, COLLAB, np.zeros(4), ScorerConfig())
    assert not scorer.scores(memory()).any()
    with pytest.raises(ValueError, match="one collaborative row"):
        ReferenceScorer(SPACE, COLLAB[:3], np.zeros(4))


def rating(item: str, value: float, n: int) -> dict[str, Any]:
    return {"event_id": f"e{n}", "tenant": "t", "user_id": "u", "item_id": item,
            "type": "rate", "value": value, "ts": 1000 + n}  # fmt: skip


def test_events_are_evidence_newest_first_even_when_they_teach_no_belief() -> None:
    events = [rating("i0", 5.0, 0), rating("i1", 3.0, 1), rating("zz", 5.0, 2),
              rating("i2", 1.0, 3)]  # fmt: skip
    mem = event_memory(events, SPACE)
    assert mem.evidence == (("i2", -1.0), ("i1", 0.0), ("i0", 1.0))
    assert mem.weights == pytest.approx([1.0, -1.0])  # the 3-star makes no pseudo-chunk
    only_neutral = event_memory([rating("i1", 3.0, 0)], SPACE)
    assert only_neutral.vectors.shape == (0, 3) and only_neutral.evidence == (("i1", 0.0),)
