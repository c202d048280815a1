"""Ranking metrics of the evaluation: the target's rank in a full ranking, HR@k, NDCG@k.

Every variant produces one score per catalogue item; the metrics only need
where the target lands among the allowed candidates. Ties are broken against
the target (every candidate scoring the same counts as ranked above it), so a
scorer that cannot tell items apart earns nothing from the tie-break: a constant
scorer ranks every target last. A target that is not a candidate at all (an
item the index does not know yet) has no rank and is a miss.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

__all__ = ["RankingMetrics", "hit_at", "ndcg_at", "summarize", "target_rank"]

Scores = npt.NDArray[np.floating]
Mask = npt.NDArray[np.bool_]


def target_rank(scores: Scores, target: int, allowed: Mask) -> int | None:
    """0-based rank of ``target`` among the ``allowed`` items, ties counted above it.

    None when the target is not allowed (not rankable). NaN scores rank last.
    """
    if scores.shape != allowed.shape:
        raise ValueError(f"scores {scores.shape} and mask {allowed.shape} differ in shape")
    if not 0 <= target < scores.shape[0]:
        raise IndexError(f"target {target} outside {scores.shape[0]} items")
    if not allowed[target]:
        return None
    clean = np.where(np.isnan(scores), -np.inf, scores)
    mine = clean[target]
    at_least = int(np.count_nonzero(allowed & (clean >= mine)))
    return at_least - 1  # the target itself is among them


def hit_at(rank: int | None, k: int) -> float:
    """1 when the target is in the top ``k``, else 0."""
    return 1.0 if rank is not None and rank < k else 0.0


def ndcg_at(rank: int | None, k: int) -> float:
    """NDCG@k with one relevant item: 1 / log2(rank + 2) inside the top ``k``, else 0."""
    return 1.0 / math.log2(rank + 2) if rank is not None and rank < k else 0.0


@dataclass(frozen=True)
class RankingMetrics:
    """Means over the evaluated targets, and how many there were."""

    hr_at_1: float
    hr_at_10: float
    ndcg_at_10: float
    users: int
    # Standard error of HR@10 (binomial): how far apart two variants must be to mean much.
    hr_at_10_se: float
    unrankable: int
    # Mean of rank / (candidates - 1): 0 = always first, ~0.5 = random, 1 = always last
    # (unrankable counts as last). Far more sensitive than HR@10 when hits are rare.
    mean_rank_pct: float


def summarize(
    ranks: Sequence[int | None], candidates: Sequence[int] | None = None
) -> RankingMetrics:
    """Aggregate ranks (None: not rankable) among ``candidates`` items into the means."""
    n = len(ranks)
    if n == 0:
        return RankingMetrics(0.0, 0.0, 0.0, 0, 0.0, 0, 0.0)
    if candidates is not None and len(candidates) != n:
        raise ValueError("one candidate count per rank")
    pct = [
        1.0 if r is None else r / max(c - 1, 1)
        for r, c in zip(ranks, candidates or [0] * n, strict=True)
    ]
    hr10 = sum(hit_at(r, 10) for r in ranks) / n
    return RankingMetrics(
        hr_at_1=sum(hit_at(r, 1) for r in ranks) / n,
        hr_at_10=hr10,
        ndcg_at_10=sum(ndcg_at(r, 10) for r in ranks) / n,
        users=n,
        hr_at_10_se=math.sqrt(hr10 * (1.0 - hr10) / n),
        unrankable=sum(r is None for r in ranks),
        mean_rank_pct=sum(pct) / n if candidates is not None else float("nan"),
    )
