"""The writer's planner state: clocks and deferrals survive a restart through the state store."""

from __future__ import annotations

from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from memory_store.compare import diff_snapshots
from memory_store.keeper import MemoryKeeper
from memory_store.lance.planner_state import InMemoryPlannerState, LancePlannerState
from memory_store.store import EventRecord
from memory_store.tiers import Operation
from planner.state import (
    Deferred,
    PlanningState,
    Request,
    Timed,
    Waiting,
    decode_state,
    encode_state,
)
from planner.summary import LastRun, OperationClock
from tests.store.test_keeper import OLD, keeper, records
from tests.store.test_tier_store import catalogue, some_events

RESYNTH: Request = ("acme", "u1", "resynthesis", {}, "plan-1", "plan plan-1 by rules: drift")


def ingested(k: MemoryKeeper, state: PlanningState, start: int, n: int) -> None:
    """A batch through the keeper, counted on the planner's clocks as the writer does."""
    events = some_events("acme", "u1", start, n, OLD + start)
    result = k.ingest([EventRecord(e, 0, start + i) for i, e in enumerate(events)])
    state.observe(k, result)


@given(
    total=st.integers(0, 10**9),
    runs=st.dictionaries(
        st.sampled_from(list(Operation)),
        st.tuples(st.floats(0, 2e9, allow_nan=False), st.integers(0, 10**6)),
    ),
    waiting=st.lists(
        st.tuples(st.integers(0, 10**6), st.text(max_size=8), st.floats(0.0, 1.0)), max_size=4
    ),
    through=st.integers(-1, 10**12),
    timed_at=st.lists(st.floats(0, 2e9, allow_nan=False), max_size=3),
)
def test_a_state_document_decodes_to_what_was_encoded(
    total: int,
    runs: dict[Operation, tuple[float, int]],
    waiting: list[tuple[int, str, float]],
    through: int,
    timed_at: list[float],
) -> None:
    clock = OperationClock(total, {op: LastRun(ts, n) for op, (ts, n) in runs.items()}, through)
    held: Waiting = [
        (at, ("t", user, "forgetting", {"min_strength": x}, "p", "why")) for at, user, x in waiting
    ]
    timed: Timed = [(at, ("t", "u", "consolidation", {}, "p", "later")) for at in timed_at]
    assert decode_state(encode_state(clock, held, timed)) == (clock, held, timed)


def test_clocks_survive_a_restart(tmp_path: Path) -> None:
    k = keeper(tmp_path)
    k.add_items(list(catalogue("acme").values()))
    store = InMemoryPlannerState()
    first = PlanningState(store)
    ingested(k, first, 0, 6)
    (summary,) = first.plan_round(k, None).summaries
    assert summary.events_total == 6 and summary.events_since[Operation.RESYNTHESIS] == 6
    first.run_requests(k, [RESYNTH])
    assert first.clock(("acme", "u1")).runs[Operation.RESYNTHESIS].events_total == 6

    restarted = PlanningState(store)  # a new writer process over the same store
    ingested(k, restarted, 6, 4)
    (summary,) = restarted.plan_round(k, None).summaries
    assert summary.events_total == 10
    # Resynthesis ran 4 events ago, not "never": the restart did not reset the clock.
    assert summary.events_since[Operation.RESYNTHESIS] == 4
    assert summary.seconds_since[Operation.RESYNTHESIS] is not None
    assert summary.events_since[Operation.CONSOLIDATION] == 10


def test_a_deferral_survives_a_restart_and_comes_due_once(tmp_path: Path) -> None:
    k = keeper(tmp_path)
    k.add_items(list(catalogue("acme").values()))
    store = InMemoryPlannerState()
    first = PlanningState(store)
    ingested(k, first, 0, 5)
    first.plan_round(k, None)
    first.defer([Deferred(RESYNTH, 3)])
    first.run_requests(k, [])  # the writer saves with every run
    assert first.waiting(("acme", "u1")) == [(8, RESYNTH)]

    restarted = PlanningState(store)
    ingested(k, restarted, 5, 2)
    assert restarted.plan_round(k, None).due == []  # 7 < 8
    ingested(k, restarted, 7, 1)
    assert restarted.plan_round(k, None).due == [RESYNTH]
    assert restarted.plan_round(k, None).due == []
    # ... and once due it is gone from the store too: another restart does not run it again.
    again = PlanningState(store)
    ingested(k, again, 8, 5)
    assert again.plan_round(k, None).due == []


def test_a_newer_deferral_replaces_the_older_and_a_run_settles_it(tmp_path: Path) -> None:
    k = keeper(tmp_path)
    state = PlanningState(InMemoryPlannerState())
    ingested(k, state, 0, 5)
    forget: Request = ("acme", "u1", "forgetting", {}, "plan-0", "plan plan-0 by llm: soon")
    state.defer([Deferred(RESYNTH, 20), Deferred(forget, 20)])
    ingested(k, state, 5, 2)
    newer: Request = ("acme", "u1", "resynthesis", {}, "plan-2", "plan plan-2 by rules: drift")
    state.defer([Deferred(newer, 20)])
    # One pending resynthesis (the newer plan's, counted from now), the forgetting untouched.
    assert sorted(state.waiting(("acme", "u1"))) == [(25, forget), (27, newer)]
    state.run_requests(k, [("acme", "u1", "forgetting", {}, "plan-3", "plan plan-3: now")])
    assert state.waiting(("acme", "u1")) == [(27, newer)]


def test_items_that_arrive_after_their_events_are_absorbed_at_the_next_round(
    tmp_path: Path,
) -> None:
    k = keeper(tmp_path)
    state = PlanningState(InMemoryPlannerState())
    ingested(k, state, 0, 6)  # the catalogue is still empty: no beliefs yet
    (summary,) = state.plan_round(k, None).summaries
    assert summary.chunk_count == 0
    assert state.plan_round(k, None).notices == []  # nothing arrived: nobody is read
    k.add_items(list(catalogue("acme").values()))
    late = state.plan_round(k, None)
    assert [(t, u) for t, u, _ in late.notices] == [("acme", "u1")]
    # The user is looked at again in the same round, now with beliefs.
    (summary,) = late.summaries
    assert summary.chunk_count > 0
    assert state.plan_round(k, None).notices == []  # resolved: not read again


def test_only_changed_users_are_saved(tmp_path: Path) -> None:
    k = keeper(tmp_path)
    store = InMemoryPlannerState()
    state = PlanningState(store)
    ingested(k, state, 0, 3)
    state.plan_round(k, None)
    state.plan_round(k, None)  # saves the first round's settled marks
    saves = store.saves
    state.plan_round(k, None)  # nothing happened since
    state.run_requests(k, [])
    assert store.saves == saves


def test_the_lance_state_store_overwrites_and_keeps_tenants_apart(tmp_path: Path) -> None:
    store = LancePlannerState(str(tmp_path))
    assert store.load([("acme", "u1")]) == {}  # no table yet
    store.save({("acme", "u1"): "a1", ("globex", "u1"): "g1"})
    store.save({("acme", "u1"): "a2"})
    store.save({("acme", "u1"): "a2"})  # a replayed save changes nothing
    assert store.load([("acme", "u1"), ("globex", "u1"), ("acme", "u2")]) == {
        ("acme", "u1"): "a2",
        ("globex", "u1"): "g1",
    }
    assert store.load([("initech", "u1")]) == {}
    store.compact()
    reopened = LancePlannerState(str(tmp_path))
    assert reopened.load([("acme", "u1")]) == {("acme", "u1"): "a2"}
    assert reopened._open(create=False).count_rows() == 2


def test_a_crash_loses_no_pending_maintenance_and_no_waiting_fold(tmp_path: Path) -> None:
    """Users touched after the last finished round, and folds waiting for an item, come back."""
    k = keeper(tmp_path)
    store = InMemoryPlannerState()
    state = PlanningState(store)
    items = catalogue("acme")
    k.add_items([v for key, v in items.items() if key != "i3"])
    first = k.ingest(records(some_events("acme", "u1", 0, 3, OLD)))
    state.observe(k, first)
    waiting = records(some_events("acme", "u9", 100, 12, OLD))
    k.ingest(waiting)  # u9's 6th event (a skip of i3) names an item not in the catalogue yet
    assert k.held_users == 1
    state.plan_round(k, None)  # takes u1 and u9, notes the marks
    state.plan_round(k, None)  # the first round's work is done: its marks are saved
    later = some_events("acme", "u2", 200, 4, OLD)
    k.ingest([EventRecord(e, 0, 100 + n) for n, e in enumerate(later)])
    # kill -9: a new keeper and planner state on the same stores
    restarted = keeper(tmp_path)
    again = PlanningState(store)
    again.recover(restarted, {0})
    assert sorted(restarted.take_dirty()) == [("acme", "u2"), ("acme", "u9")]
    assert restarted.held_users == 2  # u9 still waits, as before the crash; u2 too (i3)
    restarted.add_items([items["i3"]])
    restarted.resolve_late_items()
    assert restarted.held_users == 0
    reference = keeper(tmp_path / "reference")
    reference.add_items(list(items.values()))
    reference.ingest(waiting)
    got = restarted.store.read_snapshots([("acme", "u9")])[("acme", "u9")]
    want = reference.store.read_snapshots([("acme", "u9")])[("acme", "u9")]
    assert got.chunks and not diff_snapshots(got, want).differs
