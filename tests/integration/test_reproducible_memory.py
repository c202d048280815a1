"""Through the real broker and worker: one stream, two stores, the same memory.

An ML-100K slice (same-second bursts included) is replayed once; fresh workers
with their own consumer groups and stores read it with different batch sizes,
and one of them is killed with SIGKILL mid-stream and restarted. Maintenance
is on (the fixed policy, a round per day of event time, the last round closed
once the partitions go quiet), so profiles, consolidation and forgetting must
come out the same too.
"""

from __future__ import annotations

import signal
import time
from pathlib import Path
from typing import Any

import pytest

from memory_store.compare import StoreDiff, diff_stores
from memory_store.lance.store import open_store
from streams.settings import CodebookSettings, Settings
from streams.tools.datasets import load_dataset
from streams.tools.replay import replay

pytestmark = pytest.mark.integration

EVENTS = 12_000


def _run_settings(settings: Settings, name: str, tmp: Path, batch_size: int) -> Settings:
    return settings.model_copy(
        update={
            "app_id": f"{settings.app_id}-{name}",
            "lancedb_uri": str(tmp / name),
            "batch_size": batch_size,
            "batch_seconds": 0.05 if batch_size < 500 else 0.5,
            "round_event_s": 86_400.0,
            "round_idle_s": 8.0,  # the end of the stream, not a pause in it
            "codebook": CodebookSettings(enabled=False),
        }
    )


def _settled(reference: str, uri: str, tenant: str, timeout: float = 300.0) -> StoreDiff:
    """The diff to ``reference`` once ``uri`` holds every event and matches (or the timeout).

    The timeout is generous: on a loaded 2-core machine a run of 97-event batches
    has taken over 90 s, and a diff of a store still ingesting says nothing.
    """
    deadline = time.monotonic() + timeout
    found = diff_stores(open_store(reference), open_store(uri), tenant)
    while found.differing and time.monotonic() < deadline:
        time.sleep(2.0)
        if open_store(uri).count_events(tenant) == EVENTS:
            found = diff_stores(open_store(reference), open_store(uri), tenant)
    return found


def test_two_runs_and_a_killed_run_give_identical_stores(
    settings: Settings, start_worker: Any, tmp_path: Path
) -> None:
    data = load_dataset("ml-100k", limit=EVENTS)
    replay(settings, data, progress=False)
    tenant = data.interactions[0]["tenant"]

    big = _run_settings(settings, "big", tmp_path, 5000)
    worker = start_worker(big)
    worker.wait_for(lambda: open_store(big.lancedb_uri).count_events(tenant) == EVENTS, timeout=120)
    worker.wait_for(lambda: worker.metric("beliefstream_events_written_total") >= EVENTS)
    closed = 'beliefstream_planner_rounds_total{trigger="idle"}'
    worker.wait_for(lambda: worker.metric(closed) >= big.partitions, timeout=60)
    assert worker.metric('beliefstream_planner_rounds_total{trigger="boundary"}') > 10
    assert worker.stop() == 0
    reference = big.lancedb_uri
    users = diff_stores(open_store(reference), open_store(reference), tenant).users
    assert users > 100
    store = open_store(reference)
    snaps = store.read_snapshots(store.list_users(tenant))
    assert sum(s.profile is not None for s in snaps.values()) > 0.9 * users

    small = _run_settings(settings, "small", tmp_path, 97)
    other = start_worker(small)
    other.wait_for(lambda: other.metric("beliefstream_events_written_total") >= EVENTS, timeout=300)
    other.wait_for(lambda: other.metric(closed) >= small.partitions, timeout=120)
    found = _settled(reference, small.lancedb_uri, tenant)
    assert not found.differing, found.differing[:3]
    assert other.stop() == 0

    killed = _run_settings(settings, "killed", tmp_path, 211)
    first = start_worker(killed)
    first.wait_for(
        lambda: open_store(killed.lancedb_uri).count_events(tenant) >= EVENTS // 3, timeout=90
    )
    assert first.stop(signal.SIGKILL) == -signal.SIGKILL
    assert open_store(killed.lancedb_uri).count_events(tenant) < EVENTS
    start_worker(killed)
    found = _settled(reference, killed.lancedb_uri, tenant)
    assert found.users == users
    assert not found.differing, found.differing[:3]
