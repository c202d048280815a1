"""The worker: a Faust app whose ingest engine turns interactions into event memory.

Whatever the engine, a batch goes to the memory writer process, its dead
letters go to the broker, and only then does the batch become committable, so
a crash at any point replays and the idempotent write makes the replay
harmless. Two engines (see ``Settings.ingest_engine``): a Faust agent, and a
batch consumer that skips Faust's per-message machinery (the ingest benchmark
shows that machinery, not Kafka or LanceDB, bounds the agent).
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Callable
from concurrent.futures import BrokenExecutor, Future
from typing import Any

import faust

from streams.batch import Consumed, dead_letter_headers
from streams.contract import Limits
from streams.metrics import WorkerMetrics
from streams.settings import Settings
from streams.writer import BatchOutcome, MemoryWriter

__all__ = ["EXIT_AGENT_CRASHED", "IngestWorker", "faust_app"]

log = logging.getLogger(__name__)

EXIT_AGENT_CRASHED = 70


def faust_app(settings: Settings) -> faust.App:
    """A Faust app tuned for throughput on raw bytes (see the ingest benchmark notes)."""
    credentials = None
    if settings.security_protocol != "PLAINTEXT":
        credentials = _credentials(settings)
    return faust.App(
        settings.app_id,
        broker=[f"kafka://{server}" for server in settings.bootstrap_servers.split(",")],
        broker_credentials=credentials,
        value_serializer="raw",
        key_serializer="raw",
        consumer_auto_offset_reset="earliest",
        consumer_max_fetch_size=8 * 1024 * 1024,
        broker_max_poll_records=5000,
        stream_buffer_maxsize=65536,
        stream_wait_empty=False,
        broker_commit_every=10_000,
        broker_commit_interval=1.0,
        broker_session_timeout=6,
        broker_heartbeat_interval=2,
        topic_partitions=settings.partitions,
        topic_allow_declare=False,
        producer_max_batch_size=16384,
        web_enabled=False,
        store="memory://",
    )


def _credentials(settings: Settings) -> Any:
    context = settings.aiokafka_options().get("ssl_context")
    if settings.security_protocol.startswith("SASL"):
        return faust.SASLCredentials(
            username=settings.sasl_username,
            password=settings.sasl_password,
            mechanism=settings.sasl_mechanism,
            ssl_context=context,
        )
    return faust.SSLCredentials(context)


class IngestWorker:
    """Owns the Faust app, the memory writer process, the metrics and the chosen engine."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.metrics = WorkerMetrics()
        limits = Limits(
            max_bytes=settings.max_event_bytes,
            max_future_skew_s=settings.max_future_skew_s,
            tenants=settings.tenants,
        )
        self.writer = MemoryWriter(settings.lancedb_uri, limits)
        self._commits_since_compact = 0
        self.app = faust_app(settings)
        self._dlq = self.app.topic(settings.topic_dlq, value_serializer="raw", key_serializer="raw")
        self.app.timer(settings.compact_every_s)(self._compact_on_timer)
        if settings.ingest_engine == "faust-agent":
            from streams.agent_engine import install_agent_engine

            install_agent_engine(self)
        else:
            from streams.batch_engine import install_batch_engine

            install_batch_engine(self)

    async def handle(self, messages: list[Consumed]) -> BatchOutcome:
        """Store a batch and deliver its dead letters; the caller then acks or commits."""
        outcome = await asyncio.wrap_future(self.writer.write(messages))
        self.metrics.batch_write_seconds.observe(outcome.write_seconds)
        deliveries = [
            await self._dlq.send(
                key=letter.source.key,
                value=letter.source.value or b"",
                headers=dead_letter_headers(letter),
            )
            for letter in outcome.dead
        ]
        if deliveries:
            await asyncio.gather(*deliveries)
        self.metrics.consumed.inc(outcome.consumed)
        self.metrics.batch_size.observe(outcome.consumed)
        for letter in outcome.dead:
            self.metrics.rejected.labels(letter.reason.value).inc()
        self.metrics.written.inc(outcome.inserted)
        self.metrics.duplicates.inc(outcome.valid - outcome.inserted)
        self.metrics.last_write.set(time.time())
        self._commits_since_compact += 1
        if self._commits_since_compact >= self.settings.compact_every_commits:
            self._schedule_compaction()
        return outcome

    def observe_lag(
        self, positions: dict[int, int], highwater: Callable[[int], int | None]
    ) -> None:
        """Lag per partition from the fetch high watermark (end offsets are not trusted)."""
        topic = self.settings.topic_interactions
        for partition, offset in positions.items():
            try:
                high = highwater(partition)
            except Exception:  # the consumer may be rebalancing; lag is best effort
                continue
            if high is not None:
                lag = max(high - offset - 1, 0)
                self.metrics.consumer_lag.labels(topic, str(partition)).set(lag)

    def die_on_failure(self, done: asyncio.Future[Any]) -> None:
        """Done-callback for in-flight batches: any failure is fatal."""
        if not done.cancelled() and (exc := done.exception()) is not None:
            self.die(exc)

    def die(self, exc: BaseException) -> None:
        """End the process at once: nothing of the failed batch may be committed."""
        self.metrics.agent_alive.set(0)
        self.metrics.agent_crashes.inc()
        log.critical("ingest agent crashed; stopping the worker", exc_info=exc)
        for handler in logging.getLogger().handlers:
            handler.flush()
        os._exit(EXIT_AGENT_CRASHED)

    async def _compact_on_timer(self) -> None:
        self._schedule_compaction()

    def _schedule_compaction(self) -> None:
        self._commits_since_compact = 0
        self.writer.compact().add_done_callback(self._compacted)

    def _compacted(self, done: Future[None]) -> None:
        exc = done.exception()
        if isinstance(exc, BrokenExecutor):
            self.die(exc)
        elif exc is not None:
            self.metrics.compactions.labels("error").inc()
            log.error("event-tier compaction failed; the next one retries: %r", exc)
        else:
            self.metrics.compactions.labels("ok").inc()
