"""Planner rounds on event time, inside the writer child: maintenance is a function of the stream.

Each partition's stream is cut into rounds of ``every_s`` event-time seconds
(aligned to the epoch). When a partition's watermark crosses into a new round,
the events before the crossing are folded, the users they touched are
summarised at the round's start time, the policy (fixed or rules: pure and
fast) decides, and what is due runs at that time, all before any event after
the crossing is folded. So batch sizes, timing and restarts do not move a
round or change what it sees. Each round's state (its window and the keeper's
settled mark) is saved with the users' clocks in one write: a restart recovers
the users touched after it and never runs a saved round again.

A partition that goes quiet (``idle_s`` wall-clock seconds without events) has
its open round closed at its users' newest event time, so the end of a replay
is maintained without waiting for events that may never come. Only a pause
mid-stream longer than ``idle_s`` makes two runs differ (see the README).
"""

from __future__ import annotations

import functools
import json
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from memory_store.keeper import IngestResult, MaintainResult, MemoryKeeper
from memory_store.store import ALL_EVENTS, EventRecord, UserKey
from memory_store.tiers import Operation
from planner.plan import AfterEvents, At, Now, Plan
from planner.policies import MAINTAIN_OPS, Policy
from planner.state import Deferred, PlanningState, Request, request_for
from streams.worker.scheduler import partition_for

__all__ = ["EventRounds", "RoundResult"]


@dataclass(frozen=True, slots=True)
class RoundResult:
    """One event-time round (of the partitions whose rounds fell at one time): its plans,
    what ran, what changed."""

    partitions: tuple[int, ...]  # the partitions whose rounds fell here at ``at`` (run as one)
    at: float
    idle: bool = False  # closed because the partition went quiet, not at a boundary
    plans: list[Plan] = field(default_factory=list)
    ran: list[Request] = field(default_factory=list)
    result: MaintainResult = field(default_factory=lambda: MaintainResult(0, 0))
    seconds: float = 0.0


@functools.lru_cache(maxsize=1 << 16)
def _partition_of(user_id: str, partitions: int) -> int:
    """A user's partition (murmur2 of the key): asked every round for every waiting user."""
    return partition_for(user_id.encode(), partitions)


# A partition's part in a round: its users, the crossing position (None: an idle close)
# and the window the round opens.
_Member = tuple[int, list[UserKey], int | None, int]


def _round_key(partition: int) -> UserKey:
    return ("", f"round:{partition}")


@dataclass(slots=True)
class _Cut:
    """A piece of one partition's records, and the round that follows it (if one does)."""

    records: list[EventRecord]
    window: int | None = None  # the round crossed into after these records
    before: int = 0  # the stream position of the crossing event


class EventRounds:
    """The writer's event-time rounds: cut batches at round boundaries, run the rounds."""

    def __init__(
        self, planning: PlanningState, policy: Policy, every_s: float, partitions: int
    ) -> None:
        if every_s <= 0:
            raise ValueError("every_s must be > 0")
        self.planning = planning
        self.policy = policy
        self.every_s = every_s
        self.partitions = partitions
        self._window: dict[int, int] = {}  # per partition: the open round's index
        self._mark: dict[int, float] = {}  # per partition: the last saved settled mark
        # Per partition: every event below this offset was folded before the last saved
        # round ran (a redelivery of one is skipped); and one past the highest offset seen.
        self._since: dict[int, int] = {}
        self._next: dict[int, int] = {}
        self._quiet_since: dict[int, float] = {}  # per partition: wall clock of its last event

    def recover(self, keeper: MemoryKeeper, partitions: Sequence[int]) -> MaintainResult:
        """Load the saved round of newly owned partitions and recover the users after it.

        ``partitions`` is the whole assignment: partitions no longer in it are let go.
        """
        self._release(keeper, (set(self._window) | set(self._quiet_since)) - set(partitions))
        fresh = self.planning.fresh(partitions)
        docs = self.planning.documents([_round_key(p) for p in fresh])
        for p in fresh:
            doc = docs.get(_round_key(p))
            if doc is not None:
                state = json.loads(doc)
                self._window[p], self._mark[p] = int(state["window"]), float(state["mark"])
                self._since[p] = self._next[p] = int(state["since"])
                # Its open round holds recovered users: it closes when the partition is quiet.
                self._quiet_since[p] = time.monotonic()
                # Users with operations planned for a later time: checked every round.
                self.planning.load_users((t, u) for t, u in state.get("timed", []))
        return self.planning.recover(keeper, fresh, {p: self._mark.get(p, 0.0) for p in fresh})

    def _release(self, keeper: MemoryKeeper, gone: set[int]) -> None:
        """Forget partitions another worker owns now: their rounds and users are its own."""
        if not gone:
            return
        self.planning.save()
        for p in gone:
            for table in (self._window, self._mark, self._since, self._next, self._quiet_since):
                table.pop(p, None)
            keeper.take_dirty(partition=p)
        self.planning.release(lambda key: _partition_of(key[1], self.partitions) in gone, gone)

    def _cuts(self, records: Sequence[EventRecord]) -> dict[int, list[_Cut]]:
        """Each partition's records in offset order, cut where a new round begins."""
        by_partition: dict[int, list[EventRecord]] = {}
        for r in records:
            if r.partition >= 0 and r.offset < self._since.get(r.partition, -1):
                continue  # folded, and its round run and saved, before a restart
            by_partition.setdefault(r.partition, []).append(r)
            if r.partition >= 0:
                self._next[r.partition] = max(self._next.get(r.partition, 0), r.offset + 1)
        cuts: dict[int, list[_Cut]] = {}
        for p, recs in by_partition.items():
            pieces = [_Cut([])]
            for r in recs:
                window = math.floor(r.event.ts / self.every_s)
                if p >= 0 and p not in self._window:
                    self._window[p] = window  # the stream's first round: nothing to close
                    pieces[-1].window, pieces[-1].before = window, -1
                    pieces.append(_Cut([]))
                elif p >= 0 and window > self._window[p]:
                    self._window[p] = window
                    pieces[-1].window, pieces[-1].before = window, r.offset
                    pieces.append(_Cut([]))
                pieces[-1].records.append(r)
            cuts[p] = pieces
        return cuts

    def ingest(
        self, keeper: MemoryKeeper, records: Sequence[EventRecord]
    ) -> tuple[list[IngestResult], list[RoundResult]]:
        """Store and fold the records piece by piece, running each round where it falls.

        Partitions are independent (a user lives in one), so the n-th pieces of all
        partitions are ingested together: one keeper call per round boundary, not
        per partition.
        """
        cuts = self._cuts(records)
        ingested: list[IngestResult] = []
        rounds: list[RoundResult] = []
        for step in range(max((len(c) for c in cuts.values()), default=0)):
            pieces = {p: c[step] for p, c in cuts.items() if step < len(c)}
            batch = [r for piece in pieces.values() for r in piece.records]
            if batch:
                result = keeper.ingest(batch)
                self.planning.observe(keeper, result)
                ingested.append(result)
            opened = {
                p: c.window for p, c in pieces.items() if c.window is not None and c.before < 0
            }
            if opened:  # the first rounds ever opened: remember where they began
                self.planning.save(self._states(opened, {}))
            closing = [
                (p, piece.window, piece.before)
                for p, piece in pieces.items()
                if piece.window is not None and piece.before >= 0
            ]
            rounds += self._rounds(keeper, closing)
        now = time.monotonic()
        for p in cuts:
            self._quiet_since[p] = now
        return ingested, rounds

    def close_idle(
        self, keeper: MemoryKeeper, idle_s: float, caught_up: set[int] | None = None
    ) -> list[RoundResult]:
        """Close the open round of partitions quiet for ``idle_s``: maintain who they touched.

        ``caught_up``: only these partitions (the consumer has read all there is), else
        any. The round runs at the newest event time of those users, so it is the
        same whenever the quiet is noticed.
        """
        now = time.monotonic()
        quiet: list[tuple[int, int, int | None]] = []
        for p, since in sorted(self._quiet_since.items()):
            if now - since < idle_s or p not in self._window:
                continue
            if caught_up is not None and p not in caught_up:
                continue
            del self._quiet_since[p]
            quiet.append((p, self._window[p], None))
        return [c for c in self._rounds(keeper, quiet) if c.plans or c.ran]

    def _states(self, windows: dict[int, int], since: dict[int, int]) -> dict[UserKey, str]:
        """The partitions' round state documents, as saved with their rounds' clocks.

        ``windows``: the round each partition is in once these rounds ran. Not the newest
        one: the batch may cross more boundaries, and a restart after this save must
        run their rounds.
        """
        timed = self.planning.timed_users()
        docs = {}
        for p, window in windows.items():
            self._since[p] = since.get(p, self._since.get(p, -1))
            state = {"window": window, "mark": self._mark.get(p, 0.0),
                     "since": self._since[p], "timed": self._in_partition(timed, p)}  # fmt: skip
            docs[_round_key(p)] = json.dumps(state)
        return docs

    def _in_partition(self, keys: set[UserKey], partition: int) -> list[UserKey]:
        return sorted(k for k in keys if _partition_of(k[1], self.partitions) == partition)

    def _rounds(
        self, keeper: MemoryKeeper, closing: Sequence[tuple[int, int, int | None]]
    ) -> list[RoundResult]:
        """Run the rounds of ``closing`` (partition, window crossed into, crossing
        position), those at one time as one: a user lives in one partition, so their users
        are disjoint, and one read, one write and one save serve them all. Position None:
        an idle close of the open window, of all seen so far, at the newest event time of
        the users it maintains."""
        groups: dict[float, list[_Member]] = {}
        for partition, window, before in closing:
            keys = keeper.take_dirty(partition=partition, before=before)
            at = window * self.every_s
            if before is None:
                extraction = Operation.EXTRACTION
                clocks = (self.planning.clock(k).runs.get(extraction) for k in keys)
                at = max([at, *(r.ts for r in clocks if r)])
            groups.setdefault(at, []).append((partition, keys, before, window))
        return [self._round(keeper, at, members) for at, members in sorted(groups.items())]

    def _round(self, keeper: MemoryKeeper, at: float, members: list[_Member]) -> RoundResult:
        """Decide for the users the partitions' rounds took, and run what is due at ``at``."""
        started = time.perf_counter()
        keys = [k for _, ks, _, _ in members for k in ks]
        # One read: the policy's view and the operations' input (every stored event).
        snapshots = keeper.store.read_snapshots(keys, ALL_EVENTS) if keys else {}
        plans = self.policy.decide(self.planning.summaries(keeper, keys, at, snapshots))
        requests: list[Request] = []
        for plan in plans:
            for op in plan.ops:
                if op.op not in MAINTAIN_OPS:
                    continue  # absorb ran with the events
                request, when = request_for(plan, op), op.when
                if isinstance(when, Now) or (isinstance(when, At) and when.ts <= at):
                    requests.append(request)
                elif isinstance(when, AfterEvents):
                    self.planning.defer([Deferred(request, when.n)])
                elif isinstance(when, At):
                    self.planning.plan_at((op.tenant, op.user_id), when.ts, request)
        partitions = tuple(p for p, _, _, _ in members)
        every = self.planning.waiting_users()
        waiting = [k for p in partitions for k in self._in_partition(every, p)]
        requests += self.planning.due_after_events(waiting) + self.planning.due_at(at, waiting)
        marks = keeper.settled_marks()
        since: dict[int, int] = {}
        for p, _, before, _ in members:
            self._mark[p] = marks.get(p, self._mark.get(p, 0.0))
            since[p] = self._next.get(p, 0) if before is None else before
        state = self._states({p: window for p, _, _, window in members}, since)
        if requests:
            result = self.planning.run_requests(keeper, requests, at, state, snapshots)
        else:
            self.planning.save(state)
            result = MaintainResult(0, 0)
        seconds = time.perf_counter() - started
        idle = all(before is None for _, _, before, _ in members)
        return RoundResult(partitions, at, idle, plans, requests, result, seconds)
