"""Run the ingest worker in this process until it is signalled or its agent dies."""

from __future__ import annotations

import asyncio
import logging

import faust
import uvloop

from streams.kafka.topics import ensure_topics
from streams.settings import Settings
from streams.worker.app import IngestWorker
from streams.worker.health import serve_health_and_metrics

__all__ = ["run_worker"]


def run_worker(settings: Settings) -> None:
    """Declare topics, serve metrics, run Faust; SIGTERM/SIGINT stop it gracefully.

    A crashed agent exits the process with a non-zero status (see ``IngestWorker._die``);
    a graceful stop commits only offsets whose events are already stored.
    """
    settings.apply_storage()
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    asyncio.set_event_loop(asyncio.new_event_loop())
    logging.basicConfig(level=settings.log_level)
    ensure_topics(settings)
    worker = IngestWorker(settings)
    if settings.metrics_port:
        serve_health_and_metrics(worker.health, settings.metrics_port)
    faust.Worker(worker.app, loglevel=settings.log_level, quiet=True).execute_from_commandline()
