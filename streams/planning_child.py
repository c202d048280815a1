"""The planner's half inside the writer child: per-user operation clocks, summaries, runs.

The writer child owns the memory, so it is where a user's snapshot is read,
summarised for the policy, and where the chosen operations run. The policy
itself (the LLM may take seconds) runs in the worker's main process between a
``plan_round`` and a ``run_planned`` call. Clocks live in this process's memory:
after a restart a user's first summary says its operations never ran, which
only makes the policy look at it sooner.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from memory_store.keeper import MaintainResult, MemoryKeeper
from memory_store.lifecycle import PlannedStep
from memory_store.store import UserKey
from memory_store.tiers import Operation
from planner.plan import PlannedOp, params_for
from planner.policies import ABSORB_OPS
from planner.summary import OperationClock, UserSummary, summarize

__all__ = ["Deferred", "PlanRound", "Request", "defer", "observe", "plan_round", "run_requests"]

Request = tuple[str, str, str, dict[str, float], str, str]
"""(tenant, user id, operation, args, plan id, why): one operation to run; plain for pickling."""


@dataclass(frozen=True, slots=True)
class Deferred:
    """An operation to run once the user has ``n`` more events than when it was planned."""

    request: Request
    n: int


@dataclass(frozen=True, slots=True)
class PlanRound:
    """Users to decide about, and deferred operations whose event count came due."""

    summaries: list[UserSummary] = field(default_factory=list)
    due: list[Request] = field(default_factory=list)


_clocks: dict[UserKey, OperationClock] = {}
# Per user: (events_total at which it is due, request).
_waiting: dict[UserKey, list[tuple[int, Request]]] = {}


def observe(keeper: MemoryKeeper, per_user: dict[UserKey, int]) -> None:
    """Count a batch's events; absorb ran on them already (extraction to weakening)."""
    for key, n in per_user.items():
        clock = _clocks.get(key, OperationClock()).observed(n)
        now = keeper.watermarks.get(key[0], 0.0)
        for op in ABSORB_OPS:
            clock = clock.ran(op, now)
        _clocks[key] = clock


def plan_round(keeper: MemoryKeeper, max_users: int | None) -> PlanRound:
    """Summaries of the users touched since the last round, and deferred work now due."""
    due: list[Request] = []
    for key, waiting in list(_waiting.items()):
        total = _clocks.get(key, OperationClock()).events_total
        due += [r for at, r in waiting if total >= at]
        left = [(at, r) for at, r in waiting if total < at]
        if left:
            _waiting[key] = left
        else:
            del _waiting[key]
    keys = keeper.take_dirty(max_users)
    if not keys:
        return PlanRound([], due)
    snapshots = keeper.store.read_snapshots(keys, keeper.params.max_events_per_user * 2)
    summaries = [
        summarize(
            snapshots[key],
            _clocks.get(key, OperationClock()),
            keeper.now_for(key[0], snapshots[key]),
            keeper.params,
        )
        for key in keys
    ]
    return PlanRound(summaries, due)


def defer(deferred: Sequence[Deferred]) -> None:
    """Hold operations until their users have ``n`` more events (a newer plan adds, not drops)."""
    for d in deferred:
        key = (d.request[0], d.request[1])
        at = _clocks.get(key, OperationClock()).events_total + d.n
        _waiting.setdefault(key, []).append((at, d.request))


def run_requests(keeper: MemoryKeeper, requests: Sequence[Request]) -> MaintainResult:
    """Run the planned maintenance operations and mark them on their users' clocks."""
    by_user: dict[UserKey, list[PlannedStep]] = {}
    for tenant, user_id, op_name, args, plan_id, why in requests:
        planned = PlannedOp(op=Operation(op_name), tenant=tenant, user_id=user_id, args=args)
        step = PlannedStep(planned.op, params_for(planned, keeper.params), plan_id, why)
        by_user.setdefault((tenant, user_id), []).append(step)
    result = keeper.run_planned(list(by_user.items()))
    for key, steps in by_user.items():
        clock = _clocks.get(key, OperationClock())
        now = keeper.watermarks.get(key[0], 0.0)
        for step in steps:
            clock = clock.ran(step.op, now)
        _clocks[key] = clock
    return result
