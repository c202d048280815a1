"""The two splits the replay evaluation can be measured on: leave-last-out and global time.

``leave_last_out`` (the default): each user's last interaction is held out and
every earlier interaction (of every user) is replayed, in timestamp order, as one
stream through the broker and worker. Every user with at least two interactions
is evaluated (943 of 943 on ml-100k), which is why it is the default: the global
time split leaves only the users active on both sides of one moment (90 on
ml-100k, 1,180 on ml-1m), too few to tell variants apart. Its cost, stated in
the JSON: the replay contains other users' interactions that happened after a
given user's target, so population-level signals (popularity, SASRec, the
collaborative item vectors) see a little of the future, as in every
leave-last-out benchmark. A user's own memory never does: only their own events
build it, and decay runs to their newest event.

``time_split``: interactions sorted by timestamp (stable, ties keep file order,
as ``streams.tools.datasets`` loads them); the first ``floor(train_fraction * n)`` are
replayed, the rest are held out, one "now" for everybody. A user is evaluated
when they have events on both sides; their target is their first held-out
interaction with an item they did not interact with in training (on MovieLens,
where a user rates an item once, simply their next interaction).

Both: every catalogue item is a candidate, the user's training items are
excluded from the ranking, and a cold target is a held-out interaction whose
item no training interaction mentions.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

__all__ = [
    "SPLITS",
    "Row",
    "SplitMethod",
    "TimeSplit",
    "leave_last_out",
    "make_split",
    "time_split",
]

Row = dict[str, Any]
SplitMethod = Literal["leave-last-out", "time"]
SPLITS: tuple[SplitMethod, ...] = ("leave-last-out", "time")


@dataclass(frozen=True)
class TimeSplit:
    """Both sides of the cut and what is evaluated on them (either split method)."""

    train: list[Row]
    test: list[Row]
    # The replayed share for ``time``; for leave-last-out, what share it came to.
    train_fraction: float
    # Timestamp of the last training interaction: the newest event the memory saw.
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
    method: SplitMethod = "time"


def _check_sorted(interactions: Sequence[Row]) -> list[float]:
    ts = [float(r["ts"]) for r in interactions]
    if any(b < a for a, b in itertools.pairwise(ts)):
        raise ValueError("interactions must be sorted by timestamp")
    return ts


def _finish(
    train: list[Row], test: list[Row], fraction: float, method: SplitMethod, first_only: bool
) -> TimeSplit:
    """Histories, targets and cold targets of a cut (``first_only``: one target per user)."""
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
        if first_only:
            targets.setdefault(user, row)
        else:
            targets[user] = row
        if item not in known:
            cold.setdefault((user, item), row)
    return TimeSplit(
        train=train,
        test=test,
        train_fraction=fraction,
        split_ts=float(train[-1]["ts"]),
        targets={u: targets[u] for u in sorted(targets)},
        history={u: list(items) for u, items in history.items()},
        known_items=known,
        cold_targets=list(cold.values()),
        method=method,
    )


def time_split(interactions: Sequence[Row], train_fraction: float = 0.9) -> TimeSplit:
    """Cut ``interactions`` (already in timestamp order) into replayed and held-out parts."""
    if not 0.0 < train_fraction < 1.0:
        raise ValueError(f"train_fraction must be in (0, 1), got {train_fraction}")
    _check_sorted(interactions)
    cut = int(len(interactions) * train_fraction)
    if cut == 0 or cut == len(interactions):
        raise ValueError(f"{len(interactions)} interactions leave one side of the split empty")
    train, test = list(interactions[:cut]), list(interactions[cut:])
    return _finish(train, test, train_fraction, "time", first_only=True)


def leave_last_out(interactions: Sequence[Row]) -> TimeSplit:
    """Hold out each user's last interaction (ties: the later in file order); see above.

    A user with a single interaction keeps it in training and is not evaluated;
    a user whose last interaction repeats an earlier item is not evaluated either
    (the item is excluded from their ranking), though it is still held out.
    """
    _check_sorted(interactions)
    last: dict[str, int] = {}
    count: dict[str, int] = {}
    for n, row in enumerate(interactions):
        user = str(row["user_id"])
        last[user] = n
        count[user] = count.get(user, 0) + 1
    held = {n for user, n in last.items() if count[user] >= 2}
    train = [r for n, r in enumerate(interactions) if n not in held]
    test = [r for n, r in enumerate(interactions) if n in held]
    if not train or not test:
        raise ValueError(f"{len(interactions)} interactions leave one side of the split empty")
    return _finish(train, test, len(train) / len(interactions), "leave-last-out", False)


def make_split(
    interactions: Sequence[Row], method: SplitMethod, train_fraction: float = 0.9
) -> TimeSplit:
    """The split ``method`` names (``train_fraction`` applies to ``time`` only)."""
    if method == "leave-last-out":
        return leave_last_out(interactions)
    if method == "time":
        return time_split(interactions, train_fraction)
    raise ValueError(f"unknown split {method!r}; choose from {', '.join(SPLITS)}")
