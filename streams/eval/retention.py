"""Which users' memories lost, before the read, events a read at their target time would keep.

Under leave-last-out every memory is read once, after the whole replay. For a
user whose held-out interaction lies long before the end of the replay (most
of ml-1m's users rated in 2000; the replay runs to 2003), the memory read is the
memory of an idle user years later: planned maintenance (rules and the LLM
schedule forgetting for idle users) expires their events and forgets their
chunks against a "now" long past their target, which a ranker asking at the
target time would not have seen. ``flat`` and ``recent`` never forget.

A user counts as *forgotten after the target* in a tiered variant when the
memory's event tier (the reader's window) holds fewer events than retention
keeps at the user's own newest training event: the newest ``window`` of those
within ``event_ttl`` of it. Reporting every variant again on the users no
tiered variant forgot this way compares them at an equal "now" (the same users
for all), and the count says how much the read-at-the-end protocol costs.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

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


def events_kept_at_target(split: TimeSplit, ttl_s: float, window: int) -> dict[str, int]:
    """user -> events a read at the user's newest training event shows: min(window, in TTL)."""
    times: dict[str, list[float]] = {u: [] for u in split.targets}
    for row in split.train:
        kept = times.get(str(row["user_id"]))
        if kept is not None:
            kept.append(float(row["ts"]))
    out: dict[str, int] = {}
    for user, ts in times.items():
        newest = max(ts, default=0.0)
        out[user] = min(window, sum(1 for t in ts if t >= newest - ttl_s))
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
            "leave-last-out reads every memory after the whole replay; a user is forgotten after "
            "the target in a tiered variant when the reader's event window holds fewer events "
            f"than retention keeps at the user's newest training event (the newest {window} "
            "within event_ttl of it); variants: every variant's metrics on the users no tiered "
            "variant forgot this way (the same users for all)"
        ),
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
