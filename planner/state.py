"""The planner's half inside the writer child: per-user operation clocks, summaries, runs.

The writer child owns the memory, so it is where a user's snapshot is read,
summarised for the policy, and where the chosen operations run. The policy
itself (the LLM may take seconds) runs in the worker's main process between a
``plan_round`` and a ``run_requests`` call.

Clocks and "after N events" deferrals are saved to a ``PlannerStateStore`` at
every round and loaded the first time a user is seen after a start, so a
restart neither forgets when an operation last ran nor drops a deferral. A
crash loses at most the event counts of one round; replayed batches count
again (the counts steer when to look, not what the memory holds).

Rounds also save, per partition, the keeper's settled mark of the round
before (whose work has run by then): after a restart, ``recover`` folds on
and touches every user with events stored after it, so a crash loses no
pending maintenance and no fold that waited for an item. The marks live in
the same store under the tenant "", which no event can carry.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from memory_store.keeper import IngestResult, MaintainResult, MemoryKeeper
from memory_store.lance.planner_state import PlannerStateStore
from memory_store.lifecycle import PlannedStep
from memory_store.store import EventRecord, UserKey
from memory_store.tiers import Operation, UserSnapshot
from planner.plan import Plan, PlannedOp, params_for
from planner.policies import ABSORB_OPS
from planner.summary import LastRun, OperationClock, UserSummary, summarize

__all__ = [
    "Deferred",
    "PlanRound",
    "PlanningState",
    "Request",
    "Timed",
    "Waiting",
    "decode_state",
    "encode_state",
    "request_for",
]

Request = tuple[str, str, str, dict[str, float], str, str]
"""(tenant, user id, operation, args, plan id, why): one operation to run; plain for pickling."""

Waiting = list[tuple[int, Request]]
"""One user's deferred operations: (events_total at which it is due, request)."""

Timed = list[tuple[float, Request]]
"""One user's operations planned for an event time (event-time rounds): (time, request)."""


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
    # (tenant, user, version) of memories changed by absorbing late items again.
    notices: list[tuple[str, str, int]] = field(default_factory=list)


def encode_state(clock: OperationClock, waiting: Waiting, timed: Timed | None = None) -> str:
    """One user's clock and deferrals as the JSON document the state store keeps."""
    runs = {op.value: [run.ts, run.events_total] for op, run in clock.runs.items()}
    body = {"events_total": clock.events_total, "runs": runs, "waiting": waiting,
            "through": clock.through, "timed": timed or []}  # fmt: skip
    return json.dumps(body, separators=(",", ":"))


def _request(raw: list[object]) -> Request:
    t, u, op, args, plan_id, why = raw
    assert isinstance(args, dict)
    return (str(t), str(u), str(op), {k: float(v) for k, v in args.items()}, str(plan_id), str(why))


def decode_state(document: str) -> tuple[OperationClock, Waiting, Timed]:
    """The inverse of ``encode_state``."""
    raw = json.loads(document)
    runs = {Operation(op): LastRun(float(ts), int(n)) for op, (ts, n) in raw["runs"].items()}
    waiting: Waiting = [(int(at), _request(r)) for at, r in raw["waiting"]]
    timed: Timed = [(float(at), _request(r)) for at, r in raw.get("timed", [])]
    clock = OperationClock(int(raw["events_total"]), runs, int(raw.get("through", -1)))
    return clock, waiting, timed


def _by(plan: Plan) -> str:
    """Who decided: the policy, its model, and why another policy stood in, if one did."""
    by = plan.policy if plan.model is None else f"{plan.policy}/{plan.model}"
    return by if plan.fallback is None else f"{by} (fallback: {plan.fallback})"


def request_for(plan: Plan, op: PlannedOp) -> Request:
    """The request that runs ``op`` of ``plan``, saying why (for the change log)."""
    why = f"plan {plan.plan_id} by {_by(plan)}: {op.reason}"
    return (op.tenant, op.user_id, op.op.value, dict(op.args), plan.plan_id, why)


def _before(total: int, at: Any, _: Request) -> bool:
    """A deferral not yet due at ``total`` events."""
    return bool(total < at)


def _keep(
    table: dict[UserKey, list[tuple[Any, Request]]],
    key: UserKey,
    keep: Callable[[Any, Request], bool],
    changed: set[UserKey],
) -> None:
    """Keep only the user's entries ``keep`` holds for (none left: the user goes), noting a
    change in ``changed``."""
    entries = table.get(key)
    if not entries:
        return
    kept = [(at, r) for at, r in entries if keep(at, r)]
    if len(kept) == len(entries):
        return
    if kept:
        table[key] = kept
    else:
        del table[key]
    changed.add(key)


_MARKS = ""  # the reserved tenant of the settled marks: an event's tenant is never empty


def _mark_key(partition: int) -> UserKey:
    return (_MARKS, f"partition:{partition}")


class PlanningState:
    """The clocks and deferrals of the users this writer has seen, backed by a state store."""

    def __init__(self, store: PlannerStateStore) -> None:
        self._store = store
        # The keeper's settled marks at the last round, saved once that round's work ran.
        self._round_marks: dict[int, float] | None = None
        self._saved_marks: dict[int, float] = {}
        self._recovered: set[int] = set()
        self._clocks: dict[UserKey, OperationClock] = {}
        self._waiting: dict[UserKey, Waiting] = {}
        self._timed: dict[UserKey, Timed] = {}
        self._changed: set[UserKey] = set()

    def clock(self, key: UserKey) -> OperationClock:
        return self._clocks.get(key, OperationClock())

    def waiting(self, key: UserKey) -> Waiting:
        return list(self._waiting.get(key, ()))

    def _load(self, keys: Iterable[UserKey]) -> None:
        """Bring users not seen since the start in from the store (one read for all)."""
        unseen = [k for k in dict.fromkeys(keys) if k not in self._clocks]
        if not unseen:
            return
        saved = self._store.load(unseen)
        for key in unseen:
            clock, waiting, timed = (
                decode_state(saved[key]) if key in saved else (OperationClock(), [], [])
            )
            self._clocks[key] = clock
            if waiting:
                self._waiting[key] = waiting
            if timed:
                self._timed[key] = timed

    def _set(self, key: UserKey, clock: OperationClock) -> None:
        self._clocks[key] = clock
        self._changed.add(key)

    def observe(self, keeper: MemoryKeeper, result: IngestResult) -> None:
        """Count a batch's new events; absorb ran on them already (extraction to weakening).

        Counted by stream position, so a replayed event is not counted twice; the
        absorb operations are marked as run at the user's newest event.
        """
        self._observe(result.positions, result.newest)

    def _observe(self, positions: dict[UserKey, list[int]], newest: dict[UserKey, float]) -> None:
        self._load(positions)
        for key, seen in positions.items():
            before = self._clocks[key]
            clock = before.observed_at(seen)
            if clock is before:
                continue
            for op in ABSORB_OPS:
                clock = clock.ran(op, newest[key])
            self._set(key, clock)

    def plan_round(self, keeper: MemoryKeeper, max_users: int | None) -> PlanRound:
        """Summaries of the users touched since the last round, and deferred work now due.

        Users whose items arrived after their events are absorbed again first.
        """
        late = keeper.resolve_late_items()
        notices = [(n.tenant, n.user_id, n.version) for n in late.notices]
        due = self.due_after_events()
        keys = keeper.take_dirty(max_users)
        if self._round_marks:  # the last round's users are maintained: its marks hold now
            moved = {p: m for p, m in self._round_marks.items() if self._saved_marks.get(p) != m}
            self._store.save({_mark_key(p): json.dumps(m) for p, m in moved.items()})
            self._saved_marks.update(moved)
        self._round_marks = keeper.settled_marks() if keeper.pending_users == 0 else None
        summaries = self.summaries(keeper, keys)
        self.save()
        return PlanRound(summaries, due, notices)

    def summaries(
        self,
        keeper: MemoryKeeper,
        keys: Sequence[UserKey],
        at: float | None = None,
        read: Mapping[UserKey, UserSnapshot] | None = None,
    ) -> list[UserSummary]:
        """The policy's view of ``keys`` at event time ``at`` (else each tenant's watermark).

        ``read``: the users' snapshots with every stored event, already read (a round's).
        """
        if not keys:
            return []
        self._load(keys)
        limit = keeper.params.max_events_per_user * 2
        if read is None:
            snapshots = keeper.store.read_snapshots(list(keys), limit)
        else:  # the newest ``limit`` events, as read_snapshots would give them
            snapshots = {k: replace(read[k], events=read[k].events[-limit:]) for k in keys}
        return [
            summarize(
                snapshots[key],
                self.clock(key),
                keeper.now_for(key[0], snapshots[key]) if at is None else at,
                keeper.params,
            )
            for key in keys
        ]

    def due_after_events(self, keys: Iterable[UserKey] | None = None) -> list[Request]:
        """Deferred operations whose user's event count came due (of ``keys``, or all)."""
        due: list[Request] = []
        for key in list(self._waiting) if keys is None else [k for k in keys if k in self._waiting]:
            total = self.clock(key).events_total
            due += [r for at, r in self._waiting[key] if total >= at]
            _keep(self._waiting, key, functools.partial(_before, total), self._changed)
        return due

    def due_at(self, now: float, keys: Iterable[UserKey] | None = None) -> list[Request]:
        """Operations planned for an event time at or before ``now`` (of ``keys``, or all)."""
        due: list[Request] = []
        for key in list(self._timed) if keys is None else [k for k in keys if k in self._timed]:
            due += [r for at, r in self._timed[key] if at <= now]
            _keep(self._timed, key, lambda at, _: at > now, self._changed)
        return due

    def plan_at(self, key: UserKey, at: float, request: Request) -> None:
        """Hold ``request`` until an event-time round at or after ``at`` (replacing an older
        plan's of the same operation)."""
        self._load([key])
        timed = [(t, r) for t, r in self._timed.get(key, []) if r[2] != request[2]]
        self._timed[key] = [*timed, (at, request)]
        self._changed.add(key)

    def waiting_users(self) -> set[UserKey]:
        """Users with deferred or timed operations."""
        return set(self._waiting) | set(self._timed)

    def timed_users(self) -> set[UserKey]:
        """Users with operations planned for an event time."""
        return set(self._timed)

    @property
    def timed_ops(self) -> int:
        return sum(len(t) for t in self._timed.values())

    def release(self, moved: Callable[[UserKey], bool], partitions: Iterable[int]) -> None:
        """Forget (saved already) users for whom ``moved`` holds, of partitions now owned by
        another worker; they are recovered again if the partitions come back."""
        for table in (self._clocks, self._waiting, self._timed):
            for key in [k for k in table if moved(k)]:
                del table[key]
        self._recovered.difference_update(partitions)

    def load_users(self, keys: Iterable[UserKey]) -> None:
        """Bring these users' clocks and plans in now (not when their next event comes)."""
        self._load(keys)

    def fresh(self, partitions: Iterable[int]) -> list[int]:
        """Of ``partitions``, those not recovered yet (each is recovered once per start)."""
        fresh = sorted(set(partitions) - self._recovered)
        self._recovered.update(fresh)
        return fresh

    def documents(self, keys: Sequence[UserKey]) -> dict[UserKey, str]:
        """Saved documents of the reserved tenant (marks, round states)."""
        if any(key[0] != _MARKS for key in keys):
            raise ValueError("only the reserved tenant's documents are read this way")
        return self._store.load(list(keys))

    def recover(
        self,
        keeper: MemoryKeeper,
        partitions: Iterable[int],
        marks: dict[int, float] | None = None,
    ) -> MaintainResult:
        """Users of newly owned partitions with events stored after the saved settled mark:
        folded on from the event tier, counted on their clocks, and touched, so the next
        round maintains them. ``marks``: given by the caller (event-time rounds save
        their own), else the wall-clock rounds' saved marks."""
        if marks is None:
            fresh = self.fresh(partitions)
            saved = self._store.load([_mark_key(p) for p in fresh])
            marks = {
                p: float(json.loads(saved[_mark_key(p)])) if _mark_key(p) in saved else 0.0
                for p in fresh
            }
        found: dict[UserKey, int] = {}
        for p, mark in marks.items():
            for key, offset in keeper.store.users_ingested_after(p, mark).items():
                found[key] = min(offset, found.get(key, offset))
        result = keeper.recover(found, seen=self._count_stored)
        self.save()
        return result

    def _count_stored(self, stored: dict[UserKey, list[EventRecord]]) -> None:
        """Count, on their clocks, recovered users' events stored after the last saved count."""
        positions = {k: [r.offset for r in recs] for k, recs in stored.items() if recs}
        newest = {k: max(r.event.ts for r in recs) for k, recs in stored.items() if recs}
        self._observe(positions, newest)

    def defer(self, deferred: Sequence[Deferred]) -> None:
        """Hold operations until their users have ``n`` more events.

        A newer plan's deferral of an operation replaces the user's older one of the
        same operation: plans made round after round must not pile up repeats.
        """
        self._load((d.request[0], d.request[1]) for d in deferred)
        for d in deferred:
            key = (d.request[0], d.request[1])
            at = self.clock(key).events_total + d.n
            self._drop_waiting(key, {d.request[2]})
            self._waiting.setdefault(key, []).append((at, d.request))
            self._changed.add(key)

    def _drop_waiting(self, key: UserKey, ops: set[str]) -> None:
        """Forget the user's deferred and timed runs of ``ops`` (superseded, or just run)."""
        _keep(self._timed, key, lambda _, r: r[2] not in ops, self._changed)
        _keep(self._waiting, key, lambda _, r: r[2] not in ops, self._changed)

    def run_requests(
        self,
        keeper: MemoryKeeper,
        requests: Sequence[Request],
        at: float | None = None,
        extra: dict[UserKey, str] | None = None,
        read: Mapping[UserKey, UserSnapshot] | None = None,
    ) -> MaintainResult:
        """Run the planned maintenance operations and mark them on their users' clocks.

        An operation that runs also settles any deferred run of it for that user.
        ``at``: the event time they run at (else each tenant's watermark); ``extra``:
        documents saved in the same write as the clocks (an event-time round's state);
        ``read``: snapshots (every stored event) already read for some of the users.
        """
        by_user: dict[UserKey, list[PlannedStep]] = {}
        for tenant, user_id, op_name, args, plan_id, why in requests:
            planned = PlannedOp(op=Operation(op_name), tenant=tenant, user_id=user_id, args=args)
            step = PlannedStep(planned.op, params_for(planned, keeper.params), plan_id, why)
            by_user.setdefault((tenant, user_id), []).append(step)
        result = keeper.run_planned(list(by_user.items()), at, read)
        self._load(by_user)
        for key, steps in by_user.items():
            clock = self.clock(key)
            now = keeper.watermarks.get(key[0], 0.0) if at is None else at
            for step in steps:
                clock = clock.ran(step.op, now)
            self._set(key, clock)
            self._drop_waiting(key, {step.op.value for step in steps})
        self.save(extra)
        return result

    def save(self, extra: dict[UserKey, str] | None = None) -> None:
        """Write the users whose clock or deferrals changed since the last save (and
        ``extra`` documents, such as an event-time round's state, in the same write)."""
        if not self._changed and not extra:
            return
        changed = sorted(self._changed)
        docs = {
            k: encode_state(self.clock(k), self.waiting(k), self._timed.get(k)) for k in changed
        }
        self._store.save({**docs, **(extra or {})})
        self._changed.clear()

    def compact(self) -> None:
        self._store.compact()
