"""The write journal on real LanceDB: a torn unit of work is rolled back, a closed one kept.

Store tier (temp dirs). The end-to-end property, a crash between any two writes
of a batch, is in ``test_event_rounds``.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from memory_store.lance.journal import WriteJournal
from memory_store.lance.planner_state import open_planner_state
from memory_store.lance.store import open_store
from memory_store.store import EventRecord
from tests.store.test_tier_store import event


class Crash(Exception):
    pass


def records(start: int, n: int) -> list[EventRecord]:
    return [
        EventRecord(event(k, "acme", "u1", "like", k % 3, 1e9 + k), 0, k)
        for k in range(start, start + n)
    ]


def test_a_unit_left_open_by_a_crash_is_rolled_back(tmp_path: Path) -> None:
    store, state = open_store(str(tmp_path)), open_planner_state(str(tmp_path))
    journal = WriteJournal(str(tmp_path))
    with journal.unit():
        store.write_events(records(0, 3))
        state.save({("acme", "u1"): "first"})
    with pytest.raises(Crash), journal.unit():
        store.write_events(records(3, 4))
        state.save({("acme", "u1"): "second", ("acme", "u2"): "new"})
        raise Crash
    assert store.count_events() == 7  # the torn unit's writes are visible until a restart
    restored = WriteJournal(str(tmp_path)).recover()
    assert set(restored) == {"events", "planner_state"}
    assert store.count_events() == 3  # the open handles see the rollback too
    assert state.load([("acme", "u1"), ("acme", "u2")]) == {("acme", "u1"): "first"}
    assert WriteJournal(str(tmp_path)).recover() == []  # rolled back once


def test_a_closed_unit_is_kept_and_nested_units_join_the_outer(tmp_path: Path) -> None:
    store = open_store(str(tmp_path))
    journal = WriteJournal(str(tmp_path))
    with journal.unit():
        store.write_events(records(0, 2))
        with journal.unit():
            store.write_events(records(2, 2))
        store.write_events(records(4, 1))
    assert WriteJournal(str(tmp_path)).recover() == []
    assert store.count_events() == 5


def test_a_table_created_inside_a_torn_unit_is_emptied(tmp_path: Path) -> None:
    store = open_store(str(tmp_path))
    journal = WriteJournal(str(tmp_path))
    store.write_events(records(0, 2))
    journal.begin()
    state = open_planner_state(str(tmp_path))
    state.save({("acme", "u1"): "made inside"})  # the planner table did not exist at begin
    assert WriteJournal(str(tmp_path)).recover() == ["planner_state"]
    assert state.load([("acme", "u1")]) == {}
    assert store.count_events() == 2


def test_journals_of_two_writers_are_apart(tmp_path: Path) -> None:
    store = open_store(str(tmp_path))
    WriteJournal(str(tmp_path), name="a").begin()
    store.write_events(records(0, 2))
    assert WriteJournal(str(tmp_path), name="b").recover() == []
    assert store.count_events() == 2
    assert WriteJournal(str(tmp_path), name="a").recover() == ["events"]
    assert store.count_events() == 0
