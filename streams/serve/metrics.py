"""The read service's Prometheus metrics, served on its own port at ``/metrics``.

Latency per route template (never the raw path: user ids would make a series per
user) and status, so an alert can hold the read p99 to a target. ``/metrics`` needs
no API key: it holds no user data.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable

from fastapi import FastAPI, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Histogram, generate_latest

__all__ = ["ServeMetrics", "instrument"]


class ServeMetrics:
    """One registry per app, so tests that build several apps do not collide."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.request_seconds = Histogram(
            "beliefstream_read_request_seconds",
            "Read API request time, by route template and status.",
            ["route", "status"],
            buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
            registry=self.registry,
        )


def instrument(app: FastAPI, metrics: ServeMetrics) -> None:
    """Time every request into ``metrics`` and serve them at ``/metrics``."""

    @app.middleware("http")
    async def timed(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        started = time.perf_counter()
        response = await call_next(request)
        route = request.scope.get("route")
        template = getattr(route, "path", None) or "unmatched"
        metrics.request_seconds.labels(template, str(response.status_code)).observe(
            time.perf_counter() - started
        )
        return response

    @app.get("/metrics", include_in_schema=False)
    def exposition() -> Response:
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)
