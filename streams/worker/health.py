"""The worker's HTTP face for operators: ``/metrics``, ``/healthz`` and ``/readyz`` on one port.

Liveness is the event loop's heartbeat: a timer on the loop stamps it every few
seconds, so a loop that hangs (a blocking call, a deadlock) stops answering
``/healthz`` with 200 although the HTTP thread still runs; a dead agent ends the
process (``IngestWorker.die``), which fails the probe by itself. Readiness adds
that the ingest agent is consuming: a worker still joining its group, or one whose
agent stopped, is not ready. Kubernetes probes and compose health checks read these.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from prometheus_client import make_wsgi_app

from streams.worker.metrics import WorkerMetrics

__all__ = ["HEARTBEAT_S", "Health", "serve_health_and_metrics"]

HEARTBEAT_S = 5.0
# Missed heartbeats before the worker counts as hung (and a first one this late at start).
_STALE_AFTER_S = 12 * HEARTBEAT_S


class Health:
    """What the probes answer, from the heartbeat and the agent's gauge."""

    def __init__(self, metrics: WorkerMetrics, clock: Callable[[], float] = time.monotonic):
        self.metrics = metrics
        self.clock = clock
        self._beat = clock()  # start-up counts as a beat: the loop has this long to begin

    def beat(self) -> None:
        """Called from the event loop, every ``HEARTBEAT_S``."""
        self._beat = self.clock()

    def live(self) -> bool:
        return self.clock() - self._beat <= _STALE_AFTER_S

    def ready(self) -> bool:
        alive = self.metrics.registry.get_sample_value("beliefstream_agent_alive")
        return self.live() and alive == 1


class _Threading(ThreadingMixIn, WSGIServer):
    daemon_threads = True


class _Quiet(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        """Probes every few seconds would flood the log."""


def _app(health: Health) -> Callable[..., Iterable[bytes]]:
    metrics_app = make_wsgi_app(health.metrics.registry)

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        if path in ("/healthz", "/readyz"):
            ok = health.live() if path == "/healthz" else health.ready()
            start_response("200 OK" if ok else "503 Service Unavailable",
                           [("Content-Type", "text/plain; charset=utf-8")])  # fmt: skip
            return [b"ok\n" if ok else b"unavailable\n"]
        return metrics_app(environ, start_response)  # type: ignore[no-any-return]

    return app


def serve_health_and_metrics(health: Health, port: int, host: str = "") -> WSGIServer:
    """Serve the three paths on ``port`` (all interfaces) from a daemon thread."""
    server = make_server(host, port, _app(health), _Threading, handler_class=_Quiet)
    threading.Thread(target=server.serve_forever, name="health", daemon=True).start()
    return server
