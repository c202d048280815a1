"""The LanceDB event tier: idempotent writes, hard tenant and user filters."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from memory_store.events import Interaction
from memory_store.lance.store import open_store
from memory_store.store import EventRecord


def record(i: int, tenant: str = "acme", user: str | None = None) -> EventRecord:
    ev = Interaction(
        event_id=f"e{i}",
        tenant=tenant,
        user_id=user or f"u{i % 5}",
        item_id=f"i{i}",
        type="view",  # type: ignore[arg-type]
        ts=1_700_000_000 + i,
    )
    return EventRecord(ev, 0, i)


def test_replayed_batch_adds_nothing(tmp_path: Path) -> None:
    store = open_store(str(tmp_path))
    first = store.write_events([record(i) for i in range(300)])
    assert (first.received, first.inserted) == (300, 300)
    again = store.write_events([record(i) for i in range(300)])
    assert (again.received, again.inserted) == (300, 0)
    overlap = store.write_events([record(i) for i in range(250, 350)])
    assert overlap.inserted == 50
    assert store.count_events() == 350


def test_replay_after_compaction_and_reopen_adds_nothing(tmp_path: Path) -> None:
    store = open_store(str(tmp_path))
    store.write_events([record(i) for i in range(100)])
    store.compact()
    store.compact()
    reopened = open_store(str(tmp_path))
    assert reopened.write_events([record(i) for i in range(100)]).inserted == 0
    assert reopened.count_events() == 100


def test_same_event_id_in_two_tenants_is_two_events(tmp_path: Path) -> None:
    store = open_store(str(tmp_path))
    store.write_events([record(1, "acme"), record(1, "globex")])
    assert store.count_events() == 2
    assert store.count_events("acme") == 1


def test_read_user_is_filtered_on_tenant_and_user(tmp_path: Path) -> None:
    store = open_store(str(tmp_path))
    store.write_events([record(i, "acme", "alice") for i in range(5)])
    store.write_events([record(i + 100, "globex", "alice") for i in range(3)])
    store.write_events([record(i + 200, "acme", "bob") for i in range(4)])
    alice = store.read_user("acme", "alice", limit=3)
    assert alice.event_count == 5
    assert [e["event_id"] for e in alice.recent_events] == ["e4", "e3", "e2"]
    assert {e["tenant"] for e in alice.recent_events} == {"acme"}
    assert store.read_user("globex", "alice").event_count == 3
    assert store.read_user("globex", "bob").event_count == 0
    quoted = store.read_user("acme' OR '1'='1", "alice")
    assert quoted.event_count == 0


@settings(
    max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.lists(st.lists(st.integers(0, 60), max_size=40), min_size=1, max_size=4))
def test_any_sequence_of_batches_stores_each_id_once(
    tmp_path: Path, batches: list[list[int]]
) -> None:
    store = open_store(str(tmp_path / str(abs(hash(str(batches))))))
    inserted = sum(store.write_events([record(i) for i in batch]).inserted for batch in batches)
    distinct = len({i for batch in batches for i in batch})
    assert inserted == distinct == store.count_events()


def test_many_workers_opening_a_new_store_at_once_all_succeed(tmp_path: Path) -> None:
    """Each worker declares the table's primary key; racing declarations must not fail."""
    barrier = threading.Barrier(6)

    def open_and_write(n: int) -> int:
        barrier.wait()
        store = open_store(str(tmp_path))
        return store.write_events([record(n * 100 + i) for i in range(10)]).inserted

    with ThreadPoolExecutor(6) as pool:
        inserted = list(pool.map(open_and_write, range(6)))
    assert inserted == [10] * 6
    assert open_store(str(tmp_path)).count_events() == 60
