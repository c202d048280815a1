"""The operations composed into the two passes a worker runs: absorb and maintain.

*Absorb* runs right after a batch of events is stored: each event in stream
order creates, reinforces or weakens its topics' chunks (``absorb_stream``), so
the beliefs depend on the user's ordered events only, never on the batches.
*Maintain* runs on a schedule (the fixed policy; the planner replaces it per
user): consolidation, forgetting, then resynthesis when the profile's sources
changed. Both are pure.

Time is event time: "now" for decay and retention is the newest event time the
caller has seen (its watermark), so a replayed history ages as it did live.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace

from memory_store.events import Interaction, Item
from memory_store.operations import (
    Embedder,
    LifecycleParams,
    Narrator,
    absorb_stream,
    consolidation,
    forgetting,
    resynthesis,
    top_chunks,
)
from memory_store.tiers import Delta, Operation, UserSnapshot, apply_delta

__all__ = [
    "MAINTENANCE_ORDER",
    "PlannedStep",
    "absorb",
    "profile_is_stale",
    "run_planned",
]


def absorb(
    snapshot: UserSnapshot,
    events: Iterable[Interaction],
    items: Mapping[str, Item],
    params: LifecycleParams,
    embed: Embedder,
    plan_id: str | None = None,
    positions: Sequence[int] | None = None,
) -> Delta:
    """New events into beliefs (extraction, reinforcement, weakening) as one delta.

    The delta of ``absorb_stream``; use that to learn where a fold waits for an item.
    """
    return absorb_stream(snapshot, events, items, params, embed, plan_id, positions).delta


def profile_is_stale(snapshot: UserSnapshot, now: float, params: LifecycleParams) -> bool:
    """Whether the profile was built from other chunks (or versions) than the current top-k."""
    if snapshot.profile is None:
        return True
    sources = tuple((c.chunk_id, c.version) for c in top_chunks(snapshot, now, params))
    return snapshot.profile.sources != sources


# The maintenance operations a plan may ask for, in the order they compose.
MAINTENANCE_ORDER = (Operation.CONSOLIDATION, Operation.FORGETTING, Operation.RESYNTHESIS)


@dataclass(frozen=True, slots=True)
class PlannedStep:
    """One planned operation: which, with which parameters, which plan asked and why.

    ``why`` (policy, model, reason) is appended to the detail of every change the
    step makes, so the durable change log alone tells who decided what and why.
    """

    op: Operation
    params: LifecycleParams
    plan_id: str | None = None
    why: str = ""


def _noted(delta: Delta, why: str) -> Delta:
    if not why or not delta.changes:
        return delta
    changes = tuple(replace(c, detail=f"{c.detail} [{why}]") for c in delta.changes)
    return replace(delta, changes=changes)


def run_planned(
    snapshot: UserSnapshot,
    steps: Iterable[PlannedStep],
    now: float,
    embed: Embedder,
    narrate: Narrator | None = None,
) -> Delta:
    """Only the maintenance operations a plan chose, in lifecycle order, each with its plan id.

    Absorb operations run with every batch already (freshness), so they are not
    planned here; a planned resynthesis of a profile that is not stale is a no-op,
    so a repeated plan never mints a new profile version for nothing.
    """
    chosen = {step.op: step for step in steps}
    unknown = set(chosen) - set(MAINTENANCE_ORDER)
    if unknown:
        raise ValueError(f"not maintenance operations: {sorted(o.value for o in unknown)}")
    deltas: list[Delta] = []
    for op in MAINTENANCE_ORDER:
        if op not in chosen:
            continue
        params, plan_id = chosen[op].params, chosen[op].plan_id
        if op is Operation.CONSOLIDATION:
            delta = consolidation(snapshot, params, plan_id)
        elif op is Operation.FORGETTING:
            delta = forgetting(snapshot, now, params, plan_id)
        elif profile_is_stale(snapshot, now, params):
            delta = resynthesis(snapshot, now, params, embed, narrate, plan_id)
        else:
            continue
        snapshot = apply_delta(snapshot, delta)
        deltas.append(_noted(delta, chosen[op].why))
    return Delta.merge(*deltas)
