"""Ranking a variant under the split: exclusions, and cold items with and without real time."""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt
import pytest

from streams.eval.scorer import ItemSpace, ReferenceScorer, ScorerConfig, unit_rows
from streams.eval.split import time_split
from streams.eval.variants import (
    content_queries,
    event_memories,
    memory_scores_fn,
    popularity_scores,
    rank_variant,
)
from streams.eval.watch import labelled


def ev(n: int, user: str, item: str, value: float = 5.0) -> dict[str, Any]:
    return {"event_id": f"e{n}", "tenant": "t", "user_id": user, "item_id": item,
            "type": "rate", "value": value, "ts": 1000 + n}  # fmt: skip


# Items p0..p3 popular in training; "new" is first seen after the cut.
ROWS = [
    ev(0, "a", "p0"), ev(1, "b", "p0"), ev(2, "c", "p0"), ev(3, "b", "p1"), ev(4, "c", "p1"),
    ev(5, "c", "p2"), ev(6, "a", "p3"),
    ev(7, "a", "p1"), ev(8, "b", "new"), ev(9, "c", "p3"),
]  # fmt: skip
SPLIT = time_split(ROWS, 0.7)
SPACE = ItemSpace(("p0", "p1", "p2", "p3", "new"), unit_rows(np.eye(5, dtype=np.float32)))


def test_popularity_ranks_by_training_counts_without_the_users_own_items() -> None:
    ranked = rank_variant(popularity_scores(SPLIT, SPACE), SPLIT, SPACE, SPLIT.known_items)
    # Counts p0 3, p1 2, p2 1, p3 1, new 0. a saw p0, p3: its target p1 ranks first; c saw
    # p0, p1, p2: p3 ranks first; b saw p0, p1: "new" ranks third, below p2 and p3.
    assert ranked.metrics.users == 3
    assert ranked.metrics.hr_at_1 == pytest.approx(2 / 3)
    assert ranked.metrics.hr_at_10 == 1.0
    assert ranked.cold_realtime.users == 1 and ranked.cold_realtime.hr_at_1 == 0.0
    assert ranked.cold_realtime.hr_at_10 == 1.0


def test_rebuild_only_cannot_rank_an_item_unknown_at_the_cut() -> None:
    def loves_new(_user: str) -> npt.NDArray[np.float64]:
        return np.array([0.0, 0.0, 0.0, 0.0, 1.0])

    ranked = rank_variant(loves_new, SPLIT, SPACE, SPLIT.known_items)
    assert ranked.cold_realtime.hr_at_1 == 1.0
    assert ranked.cold_rebuild_only.hr_at_10 == 0.0
    assert ranked.cold_rebuild_only.unrankable == 1
    everything = rank_variant(loves_new, SPLIT, SPACE, frozenset(SPACE.item_ids))
    assert everything.cold_rebuild_only.hr_at_1 == 1.0


def test_flat_and_recent_read_the_users_own_training_events() -> None:
    flat = event_memories(SPLIT, SPACE, None)
    recent = event_memories(SPLIT, SPACE, 1)
    assert set(flat) == set(SPLIT.targets)  # the evaluated users only
    assert [i for i, _ in flat["a"].evidence] == ["p3", "p0"]  # newest first
    assert [i for i, _ in recent["a"].evidence] == ["p3"]
    scorer = ReferenceScorer(SPACE, np.zeros((5, 2)), np.zeros(5), ScorerConfig())
    query = content_queries(scorer, flat)
    assert query("a") == pytest.approx([1.0, 0.0, 0.0, 1.0, 0.0])
    assert content_queries(scorer, recent)("a") == pytest.approx([0.0, 0.0, 0.0, 1.0, 0.0])
    assert not query("nobody").any()


def test_every_memory_variant_is_ranked_by_the_one_scorer() -> None:
    # Collaborative vectors: p3 sits beside p1, p0 beside p2; content and popularity off.
    collab = np.array([[1, 0], [0, 1], [1, 0.1], [0.1, 1], [0, 0]], dtype=np.float32)
    cfg = ScorerConfig(content=0.0, popularity=0.0, pool=0)
    scorer = ReferenceScorer(SPACE, collab, np.zeros(5), cfg)
    recent = memory_scores_fn("recent", scorer, event_memories(SPLIT, SPACE, 1), SPLIT, None)
    # a's newest event is p3, whose neighbour p1 is a's target: first among p1, p2, new.
    assert recent("a")[1] > recent("a")[2] > recent("a")[4]
    ranked = rank_variant(recent, SPLIT, SPACE, SPLIT.known_items)
    assert ranked.metrics.users == 3


def test_labelled_samples_are_grouped_by_label_value() -> None:
    metrics = {
        'beliefstream_ops_run_total{op="forgetting"}': 3.0,
        'beliefstream_ops_run_total{op="resynthesis"}': 5.0,
        "beliefstream_ops_run_created": 1.0,
        "beliefstream_llm_calls_total": 2.0,
    }
    assert labelled(metrics, "beliefstream_ops_run_total") == {
        "forgetting": 3.0,
        "resynthesis": 5.0,
    }
    assert labelled(metrics, "beliefstream_plans_total") == {}
