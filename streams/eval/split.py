"""The global time split every variant of the replay evaluation is measured on.

Why a global time split rather than leave-last-out: the memory is built by
replaying the stream through the real broker and worker, so the only honest
cut is one moment in time for everybody. Leave-last-out would need a different
"now" per user, i.e. one replay per user, and would let a user's memory see
interactions of other users that happened after that user's target.

The cut: interactions sorted by timestamp (stable, ties keep file order, as
``streams.datasets`` loads them); the first ``floor(train_fraction * n)`` are
replayed, the rest are held out. A user is evaluated when they have events on
both sides; their target is their first held-out interaction with an item they
did not interact with in training (on MovieLens, where a user rates an item
once, simply their next interaction). Every catalogue item is a candidate;
the user's training items are excluded from the ranking.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

__all__ = ["Row", "TimeSplit", "time_split"]

Row = dict[str, Any]


@dataclass(frozen=True)
class TimeSplit:
    """Both sides of the cut and what is evaluated on them."""

    train: list[Row]
    test: list[Row]
    train_fraction: float
    # Timestamp of the last training interaction: the "now" the memory is read at.
    split_ts: float
    # user id -> the held-out interaction to predict (users sorted by id).
    targets: dict[str, Row]
    # user id -> item ids of the user's training interactions, oldest first, no repeats.
    history: dict[str, list[str]]
    # Items with at least one training interaction: the catalogue known at the cut.
    known_items: frozenset[str]
    # Held-out interactions of users with a training history whose item no training
    # interaction mentions (first seen in the test period); one per (user, item).
    cold_targets: list[Row]


def time_split(interactions: Sequence[Row], train_fraction: float = 0.9) -> TimeSplit:
    """Cut ``interactions`` (already in timestamp order) into replayed and held-out parts."""
    if not 0.0 < train_fraction < 1.0:
        raise ValueError(f"train_fraction must be in (0, 1), got {train_fraction}")
    ts = [float(r["ts"]) for r in interactions]
    if any(b < a for a, b in itertools.pairwise(ts)):
        raise ValueError("interactions must be sorted by timestamp")
    cut = int(len(interactions) * train_fraction)
    if cut == 0 or cut == len(interactions):
        raise ValueError(f"{len(interactions)} interactions leave one side of the split empty")
    train, test = list(interactions[:cut]), list(interactions[cut:])
    history: dict[str, dict[str, None]] = {}
    for row in train:
        history.setdefault(str(row["user_id"]), {})[str(row["item_id"])] = None
    known = frozenset(str(r["item_id"]) for r in train)
    targets: dict[str, Row] = {}
    cold: dict[tuple[str, str], Row] = {}
    for row in test:
        user, item = str(row["user_id"]), str(row["item_id"])
        seen = history.get(user)
        if seen is None or item in seen:
            continue
        targets.setdefault(user, row)
        if item not in known:
            cold.setdefault((user, item), row)
    return TimeSplit(
        train=train,
        test=test,
        train_fraction=train_fraction,
        split_ts=ts[cut - 1],
        targets={u: targets[u] for u in sorted(targets)},
        history={u: list(items) for u, items in history.items()},
        known_items=known,
        cold_targets=list(cold.values()),
    )
