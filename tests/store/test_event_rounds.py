"""Event-time planner rounds on real LanceDB: with maintenance on, one stream gives one memory.

Store tier. The writer's rounds (``streams.worker.writer.rounds``) run where the events
cross a round boundary, so the same partitioned stream cut into other batches,
or cut by a crash and replayed from an earlier offset, gives identical chunks,
profiles and plans. Each example opens fresh stores, so examples are few.
"""

from __future__ import annotations

import contextlib
import itertools
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from unittest import mock

import lancedb
from hypothesis import Phase, given, settings
from hypothesis import strategies as st
from lancedb.merge import LanceMergeInsertBuilder
from lancedb.table import LanceTable

from memory_store.compare import diff_stores
from memory_store.keeper import MemoryKeeper
from memory_store.lance.journal import WriteJournal
from memory_store.lance.planner_state import open_planner_state
from memory_store.lance.tier_tables import CHANGES_TABLE
from memory_store.operations import LifecycleParams
from memory_store.store import EventRecord
from planner.policies import FixedIntervalPolicy, Policy, RulesPolicy
from planner.state import PlanningState
from streams.worker.scheduler import partition_for
from streams.worker.writer.rounds import EventRounds, RoundResult
from tests.store.test_keeper_stream import OLD, keeper
from tests.store.test_tier_store import KINDS, catalogue, event

# Shrinking reopens LanceDB stores hundreds of times: report the failing example as drawn.
_NO_SHRINK = (Phase.explicit, Phase.reuse, Phase.generate)
PARTITIONS = 2
EVERY_S = 600.0
# Beliefs fade and events expire within the stream, so forgetting has work to do in the rounds.
PARAMS = LifecycleParams(
    half_life=1_800.0, forget_threshold=0.2, event_ttl=7_200.0, min_events_per_user=5
)


def stream(raw: list[tuple[int, str, int]]) -> list[EventRecord]:
    """Records in production order, each at its user's partition and the next offset there;
    bursts of five events share a second, bursts a minute apart (rounds every ten)."""
    offsets = [0] * PARTITIONS
    out = []
    for n, (user, kind, item) in enumerate(raw):
        ev = event(n, "acme", f"u{user}", kind, item, OLD + (n // 5) * 60)
        p = partition_for(ev.user_id.encode(), PARTITIONS)
        out.append(EventRecord(ev, p, offsets[p]))
        offsets[p] += 1
    return out


class Writer:
    """One writer process: a keeper, its planning state and its rounds, over ``path``."""

    def __init__(self, path: Path, policy: Policy) -> None:
        path.mkdir(parents=True, exist_ok=True)
        self.journal = WriteJournal(str(path))
        self.journal.recover()  # a torn batch of the last writer is rolled back first
        self.keeper: MemoryKeeper = keeper(path, PARAMS)
        self.keeper.add_items(list(catalogue("acme").values()))
        planning = PlanningState(open_planner_state(str(path)))
        self.rounds = EventRounds(planning, policy, EVERY_S, PARTITIONS)
        with self.journal.unit():
            self.rounds.recover(self.keeper, list(range(PARTITIONS)))
        self.ran: list[RoundResult] = []

    def write(self, records: list[EventRecord]) -> None:
        with self.journal.unit():
            self.ran += self.rounds.ingest(self.keeper, records)[1]

    def close(self) -> None:
        with self.journal.unit():
            self.ran += self.rounds.close_idle(self.keeper, 0.0)


def effects(path: Path) -> list[tuple[str, str, str]]:
    """The change log's effects: (chunk, operation, event) for every event a change applied."""
    rows = lancedb.connect(str(path)).open_table(CHANGES_TABLE).to_arrow().to_pylist()
    return sorted((r["chunk_id"] or "", r["op"], e) for r in rows for e in r["event_ids"])


def plans(ran: list[RoundResult]) -> set[str]:
    return {p.plan_id for r in ran for p in r.plans}


@settings(max_examples=10, deadline=None, phases=_NO_SHRINK)
@given(
    st.lists(
        st.tuples(st.integers(0, 5), st.sampled_from(KINDS), st.integers(0, 5)),
        min_size=20,
        max_size=120,
    ),
    st.sampled_from(["fixed", "rules"]),
    st.data(),
)
def test_rounds_on_event_time_give_one_memory_whatever_the_batches_and_crashes(
    raw: list[tuple[int, str, int]], policy_name: str, data: st.DataObject
) -> None:
    records = stream(raw)
    cuts = sorted(data.draw(st.sets(st.integers(1, len(records) - 1), max_size=6)))
    bounds = list(zip([0, *cuts], [*cuts, len(records)], strict=True))
    crash_after = data.draw(st.integers(0, len(bounds) - 1))
    committed = data.draw(st.integers(0, crash_after))  # batches before it were committed

    def policy() -> Policy:
        return FixedIntervalPolicy(0.0) if policy_name == "fixed" else RulesPolicy()

    with tempfile.TemporaryDirectory() as tmp:
        clean = Writer(Path(tmp) / "clean", policy())
        clean.write(records)
        clean.close()

        path = Path(tmp) / "cut"
        first = Writer(path, policy())
        for a, b in bounds[: crash_after + 1]:
            first.write(records[a:b])
        # kill -9: a new process over the same stores, the consumer back at the last commit
        again = Writer(path, policy())
        for a, b in bounds[committed:]:
            again.write(records[a:b])
        again.close()

        found = diff_stores(clean.keeper.store, again.keeper.store)
        assert not found.differing, found.differing[:2]
        assert plans(first.ran) | plans(again.ran) == plans(clean.ran)
        assert effects(path) == effects(Path(tmp) / "clean")
        assert any(r.result.users for r in clean.ran)  # maintenance did run
        users = clean.keeper.store.read_snapshots(clean.keeper.store.list_users("acme"))
        assert all(s.profile is not None for s in users.values() if s.chunks)


def test_a_round_runs_at_its_boundary_with_only_the_events_before_it(tmp_path: Path) -> None:
    """One batch holding a boundary: the round sees the user as of the crossing event."""
    records = stream([(1, "like", n % 4) for n in range(30)])  # u1; a burst a minute
    start = (OLD // EVERY_S + 1) * EVERY_S
    crossing = next(n for n, r in enumerate(records) if r.event.ts >= start)
    whole = Writer(tmp_path / "whole", FixedIntervalPolicy(0.0))
    whole.write(records)
    upto = Writer(tmp_path / "upto", FixedIntervalPolicy(0.0))
    upto.write(records[:crossing])
    assert upto.ran == [] and whole.ran[0].at == start
    assert {req[1] for req in whole.ran[0].ran} == {"u1"}
    # the first round's profile is the one a writer that stopped at the boundary would build
    (closed,) = upto.rounds.close_idle(upto.keeper, 0.0)
    key = ("acme", "u1")
    built = upto.keeper.store.read_snapshots([key])[key].profile
    assert built is not None and closed.at == records[crossing - 1].event.ts
    assert whole.ran[0].result.ops == closed.result.ops


def test_a_quiet_partition_has_its_open_round_closed_once(tmp_path: Path) -> None:
    records = stream([(2, "like", n % 4) for n in range(4)])  # one burst: no boundary crossed
    w = Writer(tmp_path, FixedIntervalPolicy(0.0))
    w.write(records)
    assert w.ran == []
    assert w.rounds.close_idle(w.keeper, 3600.0) == []  # not quiet long enough
    closed = w.rounds.close_idle(w.keeper, 0.0)
    assert len(closed) == 1 and closed[0].at == records[-1].event.ts
    assert w.rounds.close_idle(w.keeper, 0.0) == []
    snap = w.keeper.store.read_snapshots([("acme", "u2")])[("acme", "u2")]
    assert snap.profile is not None


class Crash(Exception):
    """kill -9 in the middle of a write sequence."""


@contextlib.contextmanager
def crash_at(write: int) -> Iterator[None]:
    """Every LanceDB write (merge-insert, add, delete) counts; the ``write``-th never lands."""
    count = itertools.count(1)
    merge, add, delete = LanceMergeInsertBuilder.execute, LanceTable.add, LanceTable.delete

    def gate(real: Callable[..., Any]) -> Callable[..., Any]:
        def wrapped(*args: Any, **kwargs: Any) -> Any:
            if next(count) == write:
                raise Crash
            return real(*args, **kwargs)

        return wrapped

    with (
        mock.patch.object(LanceMergeInsertBuilder, "execute", gate(merge)),
        mock.patch.object(LanceTable, "add", gate(add)),
        mock.patch.object(LanceTable, "delete", gate(delete)),
    ):
        yield


@settings(max_examples=10, deadline=None, phases=_NO_SHRINK)
@given(
    st.lists(
        st.tuples(st.integers(0, 5), st.sampled_from(KINDS), st.integers(0, 5)),
        min_size=20,
        max_size=120,
    ),
    st.sampled_from(["fixed", "rules"]),
    st.integers(1, 80),
    st.data(),
)
def test_a_crash_between_any_two_writes_of_a_batch_gives_the_same_memory(
    raw: list[tuple[int, str, int]], policy_name: str, write: int, data: st.DataObject
) -> None:
    """The crash falls inside a batch: after its events landed but not its beliefs, after its
    beliefs but not its change log, after a round's operations but not its saved state..."""
    records = stream(raw)
    cuts = sorted(data.draw(st.sets(st.integers(1, len(records) - 1), max_size=6)))
    bounds = list(zip([0, *cuts], [*cuts, len(records)], strict=True))

    def policy() -> Policy:
        return FixedIntervalPolicy(0.0) if policy_name == "fixed" else RulesPolicy()

    with tempfile.TemporaryDirectory() as tmp:
        clean = Writer(Path(tmp) / "clean", policy())
        clean.write(records)
        clean.close()

        path = Path(tmp) / "cut"
        crashed = len(bounds) - 1
        first = Writer(path, policy())
        with crash_at(write):
            for k, (a, b) in enumerate(bounds):
                try:
                    first.write(records[a:b])
                except Crash:
                    crashed = k
                    break
        committed = data.draw(st.integers(0, crashed))  # the consumer's last commit
        again = Writer(path, policy())
        for a, b in bounds[committed:]:
            again.write(records[a:b])
        again.close()

        found = diff_stores(clean.keeper.store, again.keeper.store)
        assert not found.differing, found.differing[:2]
        assert plans(first.ran) | plans(again.ran) == plans(clean.ran)
        assert effects(path) == effects(Path(tmp) / "clean")
