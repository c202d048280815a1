"""HR@k, NDCG@k and the target's rank on crafted rankings."""

from __future__ import annotations

import math

import numpy as np
import pytest

from streams.eval.ranking import hit_at, ndcg_at, summarize, target_rank


def test_rank_counts_only_allowed_items_scoring_higher() -> None:
    scores = np.array([0.9, 0.5, 0.8, 0.1, 0.7])
    allowed = np.ones(5, dtype=bool)
    assert target_rank(scores, 0, allowed) == 0
    assert target_rank(scores, 4, allowed) == 2
    allowed[0] = False  # e.g. the user already rated it
    assert target_rank(scores, 4, allowed) == 1
    assert target_rank(scores, 0, allowed) is None  # not a candidate: unrankable


def test_ties_are_counted_against_the_target() -> None:
    flat = np.zeros(6)
    allowed = np.ones(6, dtype=bool)
    assert target_rank(flat, 0, allowed) == 5
    assert target_rank(flat, 5, allowed) == 5
    assert target_rank(np.array([0.2, np.nan, 0.2]), 2, np.ones(3, dtype=bool)) == 1
    assert target_rank(np.array([0.2, np.nan, 0.2]), 1, np.ones(3, dtype=bool)) == 2


def test_rank_checks_its_inputs() -> None:
    with pytest.raises(ValueError, match="shape"):
        target_rank(np.zeros(3), 0, np.ones(4, dtype=bool))
    with pytest.raises(IndexError):
        target_rank(np.zeros(3), 3, np.ones(3, dtype=bool))


def test_hit_and_ndcg_values() -> None:
    assert [hit_at(r, 10) for r in (0, 9, 10, None)] == [1.0, 1.0, 0.0, 0.0]
    assert hit_at(0, 1) == 1.0 and hit_at(1, 1) == 0.0
    assert ndcg_at(0, 10) == 1.0
    assert ndcg_at(1, 10) == pytest.approx(1 / math.log2(3))
    assert ndcg_at(9, 10) == pytest.approx(1 / math.log2(11))
    assert ndcg_at(10, 10) == 0.0 and ndcg_at(None, 10) == 0.0


def test_summary_means_over_targets() -> None:
    ranks = [0, 3, 12, None]
    m = summarize(ranks, [101, 101, 101, 101])
    assert m.users == 4 and m.unrankable == 1
    assert m.hr_at_1 == pytest.approx(0.25)
    assert m.hr_at_10 == pytest.approx(0.5)
    assert m.ndcg_at_10 == pytest.approx((1.0 + 1 / math.log2(5)) / 4)
    assert m.hr_at_10_se == pytest.approx(math.sqrt(0.25 / 4))
    assert m.mean_rank_pct == pytest.approx((0 + 0.03 + 0.12 + 1.0) / 4)
    assert m.hr_at_1 <= m.hr_at_10 and m.ndcg_at_10 <= m.hr_at_10


def test_summary_of_nothing_is_zero_and_counts_must_match() -> None:
    assert summarize([]).users == 0
    with pytest.raises(ValueError, match="candidate"):
        summarize([0, 1], [10])
