"""The scorer's collaborative inputs: item2vec rows per item, counts, the codebook pool."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from memory_store.codebook.tenant_state import CodebookConfig
from memory_store.codebook.train import TrainConfig
from streams.eval.ablation import ABLATIONS, ablations, belief_family_ablations
from streams.eval.collab import CollabPool, collab_matrix, popularity_counts
from streams.eval.scorer import ItemSpace, MemoryVectors, ReferenceScorer, ScorerConfig, unit_rows
from streams.eval.split import leave_last_out
from streams.eval.variants import event_memories

SMALL = CodebookConfig(
    code_dim=8, levels=2, codebook_size=8, leaf_cap=8,
    train=TrainConfig(steps=40, batch_size=64, seed=0), pool=40, beam=8,
)  # fmt: skip


def ev(n: int, user: str, item: str) -> dict[str, Any]:
    return {"event_id": f"e{n}", "tenant": "t", "user_id": user, "item_id": item,
            "type": "rate", "value": 4.0, "ts": 1000 + n}  # fmt: skip


# Two taste groups: users u0..u9 watch a0..a3, users u10..u19 watch b0..b3; "lone" nobody.
ROWS = [ev(n * 4 + k, f"u{n}", f"{'a' if n < 10 else 'b'}{(n + k) % 4}")
        for n in range(20) for k in range(4)]  # fmt: skip
SPLIT = leave_last_out(ROWS)
IDS = (*(f"{g}{k}" for g in "ab" for k in range(4)), "lone")
SPACE = ItemSpace(IDS, unit_rows(np.random.default_rng(0).normal(size=(len(IDS), 6))))


def test_item2vec_rows_follow_the_space_and_co_engaged_items_are_closer() -> None:
    from memory_store.codebook.item2vec import Item2VecConfig

    matrix = collab_matrix(SPLIT, SPACE, Item2VecConfig(dim=8, window=3, epochs=60, seed=1))
    assert matrix.shape == (len(IDS), 8)
    assert not matrix[IDS.index("lone")].any()  # nobody engaged with it
    norms = np.linalg.norm(matrix[:-1], axis=1)
    assert norms == pytest.approx(np.ones(len(IDS) - 1), abs=1e-5)
    sims = matrix @ matrix.T
    within = np.mean([sims[i, j] for i in range(4) for j in range(4) if i != j])
    across = np.mean([sims[i, j] for i in range(4) for j in range(4, 8)])
    assert within > across


def test_popularity_counts_training_interactions_per_item() -> None:
    counts = popularity_counts(SPLIT, SPACE)
    assert counts.sum() == len(SPLIT.train)
    assert counts[IDS.index("lone")] == 0


def test_the_pool_returns_the_query_neighbours_without_the_users_items() -> None:
    rng = np.random.default_rng(2)
    ids = tuple(f"i{n}" for n in range(64))
    space = ItemSpace(ids, unit_rows(rng.normal(size=(64, 4))))
    collab = unit_rows(rng.normal(size=(64, 8)))
    collab[63] = 0.0  # no collaborative vector: never a candidate
    pool = CollabPool(space, collab, frozenset(ids[:60]) | {"i63"}, config=SMALL)
    assert pool.items == 60
    found = pool.candidates(("v", "u"), collab[5].astype(np.float64), 5, ["i9"])
    assert found[0] == "i5" and "i9" not in found and len(found) == 5
    assert not {"i60", "i61", "i62", "i63"} & set(found)  # unknown at the cut
    again = pool.candidates(("v", "u"), collab[7].astype(np.float64), 5, [])
    assert again == found  # cached per (variant, user)
    assert pool.candidates(("v", "w"), np.zeros(8), 5, []) == []


def test_ablations_re_rank_the_same_memories_with_parts_switched_off() -> None:
    # Collaborative vectors separate the groups; every item has the same content vector.
    collab = np.zeros((len(IDS), 2), dtype=np.float32)
    collab[:4, 0], collab[4:8, 1] = 1.0, 1.0
    space = ItemSpace(IDS, unit_rows(np.ones((len(IDS), 3))))
    scorer = ReferenceScorer(space, collab, popularity_counts(SPLIT, space), ScorerConfig())
    out = ablations("flat", scorer, event_memories(SPLIT, space, None), SPLIT, None)
    assert set(out) == set(ABLATIONS)
    # Each user's one unseen item of their own group is their target: collab ranks it first.
    assert out["collab_only"]["ndcg_at_10"] == 1.0
    # Content cannot tell items apart: the target loses every tie (6 candidates, rank 5).
    assert out["content_only"]["mean_rank_pct"] == 1.0
    assert out["content_only"]["ndcg_at_10"] == pytest.approx(1 / np.log2(7))


def test_belief_family_ablations_measure_each_family_without_and_alone() -> None:
    # Content vectors separate the groups; the genre chunk points at the user's own group,
    # the era chunk at the other one.
    content = np.zeros((len(IDS), 3), dtype=np.float32)
    content[:4, 0], content[4:8, 1], content[8, 2] = 1.0, 1.0, 1.0
    space = ItemSpace(IDS, content)
    scorer = ReferenceScorer(space, np.zeros((len(IDS), 2), np.float32),
                             popularity_counts(SPLIT, space), ScorerConfig())  # fmt: skip
    memories = {}
    for user in SPLIT.targets:
        own, other = (content[0], content[4]) if int(user[1:]) < 10 else (content[4], content[0])
        memories[user] = MemoryVectors(np.stack([own, other]), np.array([1.0, 1.0]), None, (),
                                       ("genre", "era"))  # fmt: skip
    out = belief_family_ablations("tiered_fixed", scorer, memories, SPLIT, None)
    assert set(out) == {"era", "genre"}
    assert out["genre"]["chunks"] == out["era"]["chunks"] == len(SPLIT.targets)
    assert out["genre"]["alone"]["ndcg_at_10"] == 1.0
    # The era alone points away: the target is last of 6 candidates (ties with "lone" count above).
    assert out["era"]["alone"]["ndcg_at_10"] == pytest.approx(1 / np.log2(7))
    assert out["era"]["without"]["ndcg_at_10"] > out["genre"]["without"]["ndcg_at_10"]
