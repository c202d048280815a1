"""Scores of every variant for the evaluated users, and their ranks under the split.

All variants score the same candidate set, every catalogue item, and are ranked
by the same rules (``streams.eval.ranking``): the user's training items are
excluded, and for ``rebuild_only`` on cold items so are the items the index
did not hold at the cut. ``flat`` and ``recent`` read the raw training split
(the same events the tiered workers were sent and stored), not the event tier;
every memory variant is scored by the one ``ReferenceScorer``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from streams.eval.cold import QueryFn
from streams.eval.collab import CollabPool, popularity_counts
from streams.eval.ease import EaseRanker
from streams.eval.ranking import RankingMetrics, summarize, target_rank
from streams.eval.scorer import ItemSpace, MemoryVectors, ReferenceScorer, event_memory
from streams.eval.split import Row, TimeSplit

__all__ = [
    "RECENT_EVENTS",
    "Ranked",
    "ScoreFn",
    "content_queries",
    "ease_recent_scores",
    "event_memories",
    "memory_scores_fn",
    "popularity_scores",
    "rank_variant",
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
    # Per evaluated user, in ``split.targets`` order: the target's rank, the candidates.
    ranks: tuple[int | None, ...] = ()
    candidates: tuple[int, ...] = ()
    # Seconds spent computing the evaluated users' scores (the ranking itself not counted).
    score_s: float = 0.0


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
    score_s = 0.0
    for user, target in split.targets.items():
        mark = time.perf_counter()
        scores = score(user)
        score_s += time.perf_counter() - mark
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
        tuple(ranks),
        tuple(sizes["ranks"]),
        score_s,
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
    counts = popularity_counts(split, space)
    return lambda _user: counts


def event_memories(
    split: TimeSplit, space: ItemSpace, last: int | None
) -> dict[str, MemoryVectors]:
    """``flat`` (every training event, ``last`` None) or ``recent`` (the ``last`` newest)
    memories of the evaluated users, as the scorer reads them."""
    index = space.index
    by_user: dict[str, list[Row]] = {u: [] for u in split.targets}
    for row in split.train:
        events = by_user.get(str(row["user_id"]))
        if events is not None:
            events.append(row)
    return {
        user: event_memory(events if last is None else events[-last:], space, index)
        for user, events in by_user.items()
    }


def memory_scores_fn(
    name: str,
    scorer: ReferenceScorer,
    memories: Mapping[str, MemoryVectors],
    split: TimeSplit,
    pool: CollabPool | None,
    weights: Mapping[str, float] | None = None,
    use_pool: bool | None = None,
) -> ScoreFn:
    """The reference score of every item for each user of ``memories`` (see the scorer).

    ``weights`` and ``use_pool`` vary the formula for ablations; the headline
    figures use the scorer's config (``pool_first``) for every memory variant.
    """
    empty = MemoryVectors.empty(scorer.space.vectors.shape[1])
    pooled = scorer.config.pool_first if use_pool is None else use_pool

    def score(user: str) -> npt.NDArray[np.float64]:
        memory = memories.get(user, empty)
        found: list[str] = []
        if pool is not None and pooled:
            query = scorer.collab_query(memory)
            found = pool.candidates((name, user), query, scorer.config.pool, split.history[user])
        return scorer.scores(memory, found, weights)

    return score


def content_queries(scorer: ReferenceScorer, memories: Mapping[str, MemoryVectors]) -> QueryFn:
    """q_C per user (empty memory: zero): what the content codebook is queried with."""
    empty = MemoryVectors.empty(scorer.space.vectors.shape[1])
    return lambda user: scorer.content_query(memories.get(user, empty))


def ease_recent_scores(
    cut: TimeSplit,
    space: ItemSpace,
    tiered: dict[str, dict[str, MemoryVectors]],
    ranker: EaseRanker,
) -> tuple[ScoreFn, dict[str, Any]]:
    """EASE over each user's recent events as the memory returns them: the event tier of the
    first tiered run, read as of the target (else the training split's, and it says so)."""
    cfg = ranker.config
    source = next(iter(tiered), None)
    if source is not None:
        memories, origin = tiered[source], f"event tier of {source}, read as of each target"
    else:
        memories, origin = event_memories(cut, space, cfg.window), "training split"
    empty = MemoryVectors.empty(space.vectors.shape[1])

    def score(user: str) -> npt.NDArray[np.float64]:
        return ranker.scores([item for item, _ in memories.get(user, empty).evidence])

    extra = {"events_from": origin, "l2": cfg.l2, "window": cfg.window,
             "half_life_events": cfg.half_life_events}  # fmt: skip
    return score, extra
