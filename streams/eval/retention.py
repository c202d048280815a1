"""Which users' memories lost, before the read, events a read at their target time would keep.

Every memory is read as of its user's target time (``memory_read``: a
point-in-time read), so nothing the worker did after the target (planned
forgetting of idle users, expiry against a "now" years later) is in it, and
this check reports zero users by construction. It stays as a guard: a user
counts as *forgotten* in a tiered variant when the memory's event tier (the
reader's window) holds fewer events than retention keeps at the user's target
time (the newest ``window`` of the training events retention keeps then, see
``events_kept_at_target``); a non-zero count would mean the memory lost events
before the target that retention should have kept. Every variant is reported again on the users no
tiered variant lost (the same users for all).

Before point-in-time reads, every memory was read once after the whole replay:
most of ml-1m's users rated in 2000 and the replay runs to 2003, so the read
showed idle users' memories years after their target.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from memory_store.operations import LifecycleParams
from streams.eval.ranking import RankingMetrics, summarize
from streams.eval.scorer import MemoryVectors
from streams.eval.split import TimeSplit

__all__ = [
    "RetentionCheck",
    "events_kept_at_target",
    "forgotten_after_target",
    "intact_users",
    "retention_markdown",
    "retention_section",
]


@dataclass(frozen=True)
class RetentionCheck:
    """Per tiered variant, who was forgotten after the target; metrics on the rest."""

    forgotten: dict[str, frozenset[str]]
    intact: frozenset[str]
    metrics: dict[str, RankingMetrics]


def events_kept_at_target(split: TimeSplit, params: LifecycleParams, window: int) -> dict[str, int]:
    """user -> events a read at the user's target time shows: min(window, the training events
    retention keeps then: among the newest ``max_events_per_user``, and within the TTL of the
    target or among the newest ``min_events_per_user``). Expiry before the target is the
    worker's retention doing its job, which a ranker at that time sees too; only losing more
    than this counts."""
    times: dict[str, list[float]] = {u: [] for u in split.targets}
    for row in split.train:
        kept = times.get(str(row["user_id"]))
        if kept is not None:
            kept.append(float(row["ts"]))
    out: dict[str, int] = {}
    for user, ts in times.items():
        at = float(split.targets[user]["ts"])
        newest_first = sorted((t for t in ts if t <= at), reverse=True)
        kept_n = sum(
            1 for rank, t in enumerate(newest_first)
            if rank < params.max_events_per_user
            and (t >= at - params.event_ttl or rank < params.min_events_per_user)
        )  # fmt: skip
        out[user] = min(window, kept_n)
    return out


def forgotten_after_target(
    memories: Mapping[str, MemoryVectors], expected: Mapping[str, int]
) -> frozenset[str]:
    """Users whose memory shows fewer events than retention at their target time keeps."""
    return frozenset(u for u, m in memories.items() if len(m.evidence) < expected.get(u, 0))


def intact_users(
    forgotten: Mapping[str, frozenset[str]],
    users: Sequence[str],
    ranks: Mapping[str, tuple[Sequence[int | None], Sequence[int]]],
) -> RetentionCheck:
    """Every variant's metrics on the ``users`` no tiered variant forgot after the target.

    ``ranks``: variant -> (the target's rank per user of ``users``, in order; candidates).
    """
    lost = frozenset().union(*forgotten.values()) if forgotten else frozenset()
    keep = [i for i, u in enumerate(users) if u not in lost]
    metrics = {
        name: summarize([r[i] for i in keep], [c[i] for i in keep])
        for name, (r, c) in ranks.items()
    }
    return RetentionCheck(dict(forgotten), frozenset(users) - lost, metrics)


def retention_section(check: RetentionCheck, window: int) -> dict[str, Any]:
    """``retention_check``: users forgotten after their target, and every variant without them."""
    return {
        "definition": (
            "every memory is read as of its user's target time (point-in-time reads), so "
            "nothing done after the target is in it: zero users forgotten after the target by "
            "construction. Kept as a guard: a user counts when the reader's event window holds "
            f"fewer events than retention keeps at the user's target time (the newest {window} "
            "training events retention keeps then); variants: every variant's metrics on the "
            "users no tiered variant lost this way (the same users for all)"
        ),
        "read": "as of each user's target time",
        "forgotten_after_target": {n: len(u) for n, u in check.forgotten.items()},
        "users_intact": len(check.intact),
        "variants": {n: _figures(m) for n, m in check.metrics.items()},
    }


def retention_markdown(check: Mapping[str, Any] | None) -> list[str]:
    """Every variant again on the users whose memory nothing forgot after their target."""
    if not check:
        return []
    lost = ", ".join(f"{n} {c}" for n, c in check["forgotten_after_target"].items())
    lines = [f"On the {check['users_intact']} users no tiered memory forgot after their target "
             f"(forgotten after the target: {lost}):", "",
             "| variant | HR@10 (± se) | NDCG@10 |", "|---|---|---|"]  # fmt: skip
    for name, v in check["variants"].items():
        lines.append(f"| {name} | {v['hr_at_10']:.4f} ± {v['hr_at_10_se']:.4f} | "
                     f"{v['ndcg_at_10']:.4f} |")  # fmt: skip
    lines.append("")
    return lines


def _figures(m: RankingMetrics) -> dict[str, Any]:
    return {"hr_at_10": m.hr_at_10, "hr_at_10_se": m.hr_at_10_se, "ndcg_at_10": m.ndcg_at_10,
            "users": m.users}  # fmt: skip
