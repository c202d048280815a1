"""Scores of every variant for the evaluated users, and their ranks under the split.

All variants score the same candidate set, every catalogue item, and are ranked
by the same rules (``streams.eval.metrics``): the user's training items are
excluded, and for ``rebuild_only`` on cold items so are the items the index
did not hold at the cut. ``flat`` and ``recent`` read the raw training split
(the same events the tiered workers were sent and stored), not the event tier.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from streams.eval.cold import QueryFn
from streams.eval.metrics import RankingMetrics, summarize, target_rank
from streams.eval.sasrec import SASRecConfig, score_users, train_sasrec
from streams.eval.scorer import ItemSpace, MemoryVectors, event_memory
from streams.eval.split import Row, TimeSplit

__all__ = [
    "RECENT_EVENTS",
    "Ranked",
    "ScoreFn",
    "event_queries",
    "memory_queries",
    "popularity_scores",
    "query_scores",
    "rank_variant",
    "sasrec_scores",
]

RECENT_EVENTS = 10

ScoreFn = Callable[[str], npt.NDArray[np.float64]]
"""user id -> one score per item of the ItemSpace."""


@dataclass(frozen=True)
class Ranked:
    """A variant's metrics on the targets, and on cold targets with each catalogue."""

    metrics: RankingMetrics
    cold_realtime: RankingMetrics
    cold_rebuild_only: RankingMetrics


def rank_variant(
    score: ScoreFn,
    split: TimeSplit,
    space: ItemSpace,
    catalogue_at_cut: frozenset[str],
) -> Ranked:
    """Rank every target (and cold target) against all items the user has not seen."""
    index = space.index
    known = np.array([i in catalogue_at_cut for i in space.item_ids], dtype=bool)
    cold_by_user: dict[str, list[Row]] = {}
    for row in split.cold_targets:
        cold_by_user.setdefault(str(row["user_id"]), []).append(row)
    ranks: list[int | None] = []
    realtime: list[int | None] = []
    rebuild: list[int | None] = []
    sizes: dict[str, list[int]] = {"ranks": [], "realtime": [], "rebuild": []}
    for user, target in split.targets.items():
        scores = score(user)
        allowed = np.ones(len(space.item_ids), dtype=bool)
        allowed[[index[i] for i in split.history[user] if i in index]] = False
        ranks.append(_rank(scores, index, target, allowed))
        sizes["ranks"].append(int(allowed.sum()))
        for row in cold_by_user.get(user, ()):
            realtime.append(_rank(scores, index, row, allowed))
            rebuild.append(_rank(scores, index, row, allowed & known))
            sizes["realtime"].append(int(allowed.sum()))
            sizes["rebuild"].append(int((allowed & known).sum()))
    return Ranked(
        summarize(ranks, sizes["ranks"]),
        summarize(realtime, sizes["realtime"]),
        summarize(rebuild, sizes["rebuild"]),
    )


def _rank(
    scores: npt.NDArray[np.float64],
    index: Mapping[str, int],
    row: Row,
    allowed: npt.NDArray[np.bool_],
) -> int | None:
    n = index.get(str(row["item_id"]))
    return None if n is None else target_rank(scores, n, allowed)


def popularity_scores(split: TimeSplit, space: ItemSpace) -> ScoreFn:
    """Training interaction counts, the same for everybody."""
    index = space.index
    counts = np.zeros(len(space.item_ids), dtype=np.float64)
    for row in split.train:
        n = index.get(str(row["item_id"]))
        if n is not None:
            counts[n] += 1.0
    return lambda _user: counts


def event_queries(
    split: TimeSplit, space: ItemSpace, last: int | None, profile_weight: float
) -> QueryFn:
    """``flat`` (every training event, ``last`` None) or ``recent`` (the ``last`` newest)."""
    index = space.index
    by_user: dict[str, list[Row]] = {}
    for row in split.train:
        by_user.setdefault(str(row["user_id"]), []).append(row)

    def query(user: str) -> npt.NDArray[np.float64]:
        events = by_user.get(user, [])
        memory = event_memory(events if last is None else events[-last:], space, index)
        return memory.query(profile_weight)

    return query


def memory_queries(
    memories: Mapping[str, MemoryVectors], space: ItemSpace, profile_weight: float
) -> QueryFn:
    """Query vectors of memories read off a worker's store (empty memory: zero)."""
    empty = MemoryVectors.empty(space.vectors.shape[1])
    return lambda user: memories.get(user, empty).query(profile_weight)


def query_scores(space: ItemSpace, query: QueryFn) -> ScoreFn:
    """The memory score of every item: the item vectors times the user's query vector."""
    vectors = space.vectors.astype(np.float64)
    return lambda user: np.asarray(vectors @ query(user))


def sasrec_scores(
    split: TimeSplit,
    space: ItemSpace,
    cfg: SASRecConfig,
    on_epoch: Callable[[int, float], None] | None = None,
) -> tuple[ScoreFn, dict[str, Any]]:
    """Train SASRec on every training sequence, then score the evaluated users."""
    index = space.index
    sequences = {
        user: [index[i] + 1 for i in items if i in index] for user, items in split.history.items()
    }
    model, losses = train_sasrec(list(sequences.values()), len(space.item_ids), cfg, on_epoch)
    users: Sequence[str] = list(split.targets)
    matrix = score_users(model, [sequences[u] for u in users])
    rows = {u: n for n, u in enumerate(users)}
    info = {"epochs": cfg.epochs, "loss_first": losses[0], "loss_last": losses[-1],
            "dim": cfg.dim, "layers": cfg.layers, "max_len": cfg.max_len}  # fmt: skip
    return lambda user: matrix[rows[user]].astype(np.float64), info
