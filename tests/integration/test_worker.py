"""The worker against the real broker and a LanceDB directory: exactly-once effect,
dead letters, metrics, crash and restart."""

from __future__ import annotations

import json
import signal
import time
import urllib.request
from collections import Counter
from pathlib import Path
from typing import Any

import lancedb
import pytest

from memory_store.lance.db import open_table
from memory_store.lance.store import open_store
from streams.settings import Settings
from streams.worker.app import EXIT_AGENT_CRASHED
from tests.integration.conftest import encode, interaction, produce, read_topic

pytestmark = pytest.mark.integration


@pytest.fixture(params=["batch", "faust-agent"])
def settings(settings: Settings, request: pytest.FixtureRequest) -> Settings:
    """Every worker test runs against both ingest engines."""
    return settings.model_copy(update={"ingest_engine": request.param})


W = "beliefstream_events_written_total"
C = "beliefstream_events_consumed_total"
D = "beliefstream_events_duplicate_total"


def child_pids(pid: int) -> list[int]:
    found = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        found += [int(c) for c in (task / "children").read_text().split()]
    return found


def stored_keys(settings: Settings) -> list[str]:
    db = lancedb.connect(settings.lancedb_uri)
    table = open_table(db, "events")  # retries a table a worker is still creating
    if table is None:
        return []
    return list(table.to_arrow().column("event_key").to_pylist())


def test_events_land_exactly_once_and_a_replay_adds_nothing(
    settings: Settings, start_worker: Any
) -> None:
    n = 3000
    events = [interaction(i) for i in range(n)]
    produce(settings, encode(events))
    worker = start_worker(settings.model_copy(update={"compact_every_commits": 2}))
    worker.wait_for(lambda: worker.metric(W) >= n)

    produce(settings, encode(events))  # the same events again
    worker.wait_for(lambda: worker.metric(C) >= 2 * n)
    metrics = worker.metrics()
    assert metrics[W] == n
    assert metrics[D] == n
    assert metrics["beliefstream_agent_alive"] == 1
    for probe in ("healthz", "readyz"):  # what Kubernetes and compose ask (deploy/)
        url = f"http://127.0.0.1:{worker.settings.metrics_port}/{probe}"
        with urllib.request.urlopen(url, timeout=5) as response:
            assert response.status == 200, probe
    assert metrics['beliefstream_compactions_total{outcome="ok"}'] >= 1
    assert metrics["beliefstream_last_write_timestamp_seconds"] > 0
    assert metrics["beliefstream_batch_write_seconds_count"] >= 2
    lag = [v for k, v in metrics.items() if k.startswith("beliefstream_consumer_lag{")]
    assert lag and all(v >= 0 for v in lag)

    keys = stored_keys(settings)
    assert len(keys) == len(set(keys)) == n
    store = open_store(settings.lancedb_uri)
    user = store.read_user("acme", "user-7", limit=5)
    assert user.event_count == n // 50
    assert [e["user_id"] for e in user.recent_events] == ["user-7"] * 5
    assert worker.stop() == 0


def test_bad_events_go_to_the_dead_letter_topic_and_good_ones_around_them_land(
    settings: Settings, start_worker: Any
) -> None:
    settings = settings.model_copy(update={"tenants": frozenset({"acme"})})
    good = [interaction(i) for i in range(400)]
    bad: list[tuple[bytes, str]] = [
        (b"not json", "not_json"),
        (b"[1, 2]", "not_object"),
        (json.dumps({**interaction(9001), "user_id": 5}).encode(), "wrong_type"),
        (json.dumps({k: v for k, v in interaction(9002).items() if k != "item_id"}).encode(),
         "missing_field"),
        (json.dumps({**interaction(9003), "type": "teleport"}).encode(), "unknown_type"),
        (json.dumps({**interaction(9004), "event_id": ""}).encode(), "empty_id"),
        (json.dumps({**interaction(9005), "ts": 9_999_999_999}).encode(), "future_timestamp"),
        (json.dumps({**interaction(9006), "text": "x" * 70_000}).encode(), "oversized"),
        (json.dumps(interaction(9007, tenant="intruder")).encode(), "tenant_not_allowed"),
        (json.dumps({**interaction(9008), "event_id": "x\x1fy"}).encode(), "bad_id"),
    ]  # fmt: skip
    values = encode(good)
    for j, (raw, _) in enumerate(bad):  # spread the bad ones between good ones
        values.insert(1 + j * 40, (b"user-1", raw))
    produce(settings, values)

    worker = start_worker(settings)
    worker.wait_for(lambda: worker.metric(C) >= len(values))
    worker.wait_for(lambda: worker.metric(W) >= len(good), timeout=10)

    assert open_store(settings.lancedb_uri).count_events() == len(good)
    letters = read_topic(settings, settings.topic_dlq, expected=len(bad))
    assert len(letters) == len(bad)
    by_value = {r.value: dict(r.headers) for r in letters}
    for raw, reason in bad:
        headers = by_value[raw]  # the original bytes, untouched
        assert headers["dlq.reason"] == reason.encode()
        assert headers["dlq.topic"] == settings.topic_interactions.encode()
        assert int(headers["dlq.offset"]) >= 0
        assert headers["dlq.detail"]
    metrics = worker.metrics()
    expected = Counter(reason for _, reason in bad)
    for reason, count in expected.items():
        assert metrics[f'beliefstream_events_rejected_total{{reason="{reason}"}}'] == count
    assert metrics[W] == len(good)
    assert metrics[C] == len(values)
    assert worker.stop() == 0


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM], ids=["kill", "term"])
def test_a_worker_stopped_mid_stream_and_restarted_loses_and_duplicates_nothing(
    settings: Settings, start_worker: Any, sig: int
) -> None:
    n = 30_000
    produce(settings, encode([interaction(i, users=500) for i in range(n)]))
    slow = settings.model_copy(update={"batch_size": 200, "compact_every_commits": 20})
    first = start_worker(slow)
    first.wait_for(lambda: first.metric(W) >= 2000)
    code = first.stop(sig)
    assert code == (-signal.SIGKILL if sig == signal.SIGKILL else 0)
    stored_before = len(stored_keys(settings))
    assert 0 < stored_before < n, "the stop must land mid-stream"

    second = start_worker(slow)
    second.wait_for(lambda: len(stored_keys(settings)) >= n, timeout=120)
    second.wait_for(lambda: second.metric(W) + second.metric(D) >= n - stored_before)
    keys = stored_keys(settings)
    assert len(keys) == len(set(keys)) == n
    assert second.stop() == 0


def test_a_storage_failure_kills_the_worker_with_a_nonzero_exit(
    settings: Settings, start_worker: Any
) -> None:
    produce(settings, encode([interaction(i) for i in range(100)]))
    worker = start_worker(settings)
    worker.wait_for(lambda: worker.metric(W) >= 100)
    children = child_pids(worker.proc.pid)
    assert children, "the memory writer runs in a child process"
    lancedb.connect(settings.lancedb_uri).drop_table("events")
    produce(settings, encode([interaction(i) for i in range(100, 200)]))
    code = worker.proc.wait(60)
    assert code == EXIT_AGENT_CRASHED
    assert "ingest agent crashed" in worker.log()
    deadline = time.monotonic() + 10
    while any(Path(f"/proc/{pid}").exists() for pid in children):
        assert time.monotonic() < deadline, "the writer process outlived its worker"
        time.sleep(0.1)

    # Nothing of the failed batch was committed: a new worker stores it.
    again = start_worker(settings)
    failed = {f"acme\x1fev-{i}" for i in range(100, 200)}
    # The new group re-reads what was not committed before the crash too (ev-0..99 may come
    # first), so wait for the failed batch itself.
    again.wait_for(lambda: failed <= set(stored_keys(settings)), timeout=90)
    assert again.stop() == 0


def test_two_workers_share_the_partitions_and_store_everything_once(
    settings: Settings, start_worker: Any
) -> None:
    n = 20_000
    produce(settings, encode([interaction(i, users=400) for i in range(n)]))
    small = settings.model_copy(update={"batch_size": 250, "compact_every_commits": 10})
    first, second = start_worker(small), start_worker(small)
    first.wait_for(lambda: len(stored_keys(settings)) >= n, timeout=120)
    keys = stored_keys(settings)
    assert len(keys) == len(set(keys)) == n
    owned = [w.metric("beliefstream_assigned_partitions") for w in (first, second)]
    assert sum(owned) == settings.partitions
    assert first.stop() == 0 and second.stop() == 0
