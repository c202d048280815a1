"""The worker's probes: /healthz follows the event loop's heartbeat, /readyz the agent too."""

from __future__ import annotations

import urllib.error
import urllib.request
from collections.abc import Iterator

import pytest

from streams.tools.broker import free_port
from streams.worker.health import HEARTBEAT_S, Health, serve_health_and_metrics
from streams.worker.metrics import WorkerMetrics


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def served() -> Iterator[tuple[Health, Clock, str]]:
    clock = Clock()
    health = Health(WorkerMetrics(), clock)
    port = free_port()
    server = serve_health_and_metrics(health, port, host="127.0.0.1")
    try:
        yield health, clock, f"http://127.0.0.1:{port}"
    finally:
        server.shutdown()
        server.server_close()


def status(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return int(response.status)
    except urllib.error.HTTPError as err:
        return err.code


def test_a_starting_worker_is_live_but_not_ready_until_its_agent_runs(
    served: tuple[Health, Clock, str],
) -> None:
    health, _, base = served
    assert status(f"{base}/healthz") == 200
    assert status(f"{base}/readyz") == 503
    health.metrics.agent_alive.set(1)
    assert status(f"{base}/readyz") == 200
    health.metrics.agent_alive.set(0)
    assert status(f"{base}/readyz") == 503


def test_a_loop_that_stops_beating_fails_both_probes_and_recovers_when_it_beats(
    served: tuple[Health, Clock, str],
) -> None:
    health, clock, base = served
    health.metrics.agent_alive.set(1)
    clock.now += 11 * HEARTBEAT_S  # a few missed beats are tolerated
    assert status(f"{base}/healthz") == 200
    clock.now += 2 * HEARTBEAT_S
    assert status(f"{base}/healthz") == 503 and status(f"{base}/readyz") == 503
    health.beat()
    assert status(f"{base}/healthz") == 200 and status(f"{base}/readyz") == 200


def test_metrics_are_served_on_the_same_port(served: tuple[Health, Clock, str]) -> None:
    health, _, base = served
    health.metrics.consumed.inc(3)
    with urllib.request.urlopen(f"{base}/metrics", timeout=5) as response:
        text = response.read().decode()
    assert "beliefstream_events_consumed_total 3.0" in text
