"""The Faust worker: interactions in, event memory out.

The agent only hands batches to the memory writer process, sends dead letters
and acknowledges. A batch's offsets become committable only after its events
are in LanceDB and its dead letters are on the broker, so a crash at any point
replays, and the idempotent write makes the replay harmless.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import Sequence
from concurrent.futures import BrokenExecutor, Future
from typing import Any

import faust

from streams.batch import Consumed, dead_letter_headers
from streams.contract import Limits
from streams.metrics import WorkerMetrics
from streams.settings import Settings
from streams.writer import MemoryWriter

__all__ = ["EXIT_AGENT_CRASHED", "IngestWorker", "faust_app"]

log = logging.getLogger(__name__)

EXIT_AGENT_CRASHED = 70


def faust_app(settings: Settings, app_id: str | None = None) -> faust.App:
    """A Faust app tuned for throughput on raw bytes (see the ingest benchmark notes)."""
    credentials = None
    if settings.security_protocol != "PLAINTEXT":
        credentials = _credentials(settings)
    return faust.App(
        app_id or settings.app_id,
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
    import ssl

    context = None
    if settings.security_protocol.endswith("SSL"):
        context = ssl.create_default_context(cafile=settings.ssl_cafile)
        if settings.ssl_certfile:
            context.load_cert_chain(settings.ssl_certfile, settings.ssl_keyfile)
    if settings.security_protocol.startswith("SASL"):
        return faust.SASLCredentials(
            username=settings.sasl_username,
            password=settings.sasl_password,
            mechanism=settings.sasl_mechanism,
            ssl_context=context,
        )
    return faust.SSLCredentials(context)


class IngestWorker:
    """Owns the Faust app, the memory writer process and the metrics."""

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
        self._topic_name = settings.topic_interactions
        self._interactions = self.app.topic(
            settings.topic_interactions, value_serializer="raw", key_serializer="raw"
        )
        self._dlq = self.app.topic(settings.topic_dlq, value_serializer="raw", key_serializer="raw")
        self.app.agent(self._interactions, name="ingest")(self._ingest)
        self.app.timer(settings.compact_every_s)(self._compact_on_timer)
        self.app.on_partitions_assigned.connect(self._on_rebalance)
        self.app.on_partitions_revoked.connect(self._on_rebalance)

    async def _on_rebalance(self, sender: Any, /, *args: Any, signal: Any, **kwargs: Any) -> None:
        owned = [tp for tp in self.app.consumer.assignment() if tp.topic == self._topic_name]
        self.metrics.assigned_partitions.set(len(owned))

    async def _ingest(self, stream: Any) -> None:
        """Collect batch k+1 while batch k is decoded and written in the writer thread.

        ``take_events`` acks a batch as soon as the loop body returns, so each
        message gets one extra reference first: that early ack only drops it,
        and the real ack (the one that makes the offset committable) comes from
        ``_process`` after the write. At most one batch is in flight.
        """
        self.metrics.agent_alive.set(1)
        in_flight: asyncio.Future[None] | None = None
        try:
            async for events in stream.take_events(
                self.settings.batch_size, within=self.settings.batch_seconds
            ):
                batch = list(events)
                for event in batch:
                    event.message.incref()
                if in_flight is not None:
                    await in_flight
                in_flight = asyncio.ensure_future(self._process(batch))
                in_flight.add_done_callback(self._die_on_failure)
        except asyncio.CancelledError:
            if in_flight is not None:  # let a started write finish and ack before shutdown
                with contextlib.suppress(BaseException):
                    await asyncio.wait_for(asyncio.shield(in_flight), timeout=30)
            raise
        except BaseException as exc:
            self._die(exc)

    def _die_on_failure(self, done: asyncio.Future[None]) -> None:
        if not done.cancelled() and done.exception() is not None:
            self._die(done.exception())  # type: ignore[arg-type]

    async def _process(self, events: Sequence[Any]) -> None:
        messages = [
            Consumed(m.topic, m.partition, m.offset, m.key, m.value)
            for m in (event.message for event in events)
        ]
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
        for event in events:  # the batch is stored and its dead letters delivered
            event.ack()
        self.metrics.consumed.inc(len(events))
        self.metrics.batch_size.observe(len(events))
        for letter in outcome.dead:
            self.metrics.rejected.labels(letter.reason.value).inc()
        self.metrics.written.inc(outcome.inserted)
        self.metrics.duplicates.inc(outcome.valid - outcome.inserted)
        self.metrics.last_write.set(time.time())
        self._observe_lag(outcome.positions)
        self._commits_since_compact += 1
        if self._commits_since_compact >= self.settings.compact_every_commits:
            self._schedule_compaction()

    def _observe_lag(self, last: dict[int, int]) -> None:
        topic = self.settings.topic_interactions
        for partition, offset in last.items():
            tp = faust.types.TP(topic, partition)
            try:
                high = self.app.consumer.highwater(tp)
            except Exception:  # the consumer may be rebalancing; lag is best effort
                continue
            if high is not None:
                self.metrics.consumer_lag.labels(topic, str(partition)).set(
                    max(high - offset - 1, 0)
                )

    async def _compact_on_timer(self) -> None:
        self._schedule_compaction()

    def _schedule_compaction(self) -> None:
        self._commits_since_compact = 0
        self.writer.compact().add_done_callback(self._compacted)

    def _compacted(self, done: Future[None]) -> None:
        exc = done.exception()
        if isinstance(exc, BrokenExecutor):
            self._die(exc)
        elif exc is not None:
            self.metrics.compactions.labels("error").inc()
            log.error("event-tier compaction failed; the next one retries: %r", exc)
        else:
            self.metrics.compactions.labels("ok").inc()

    def _die(self, exc: BaseException) -> None:
        """End the process at once: acks of the failed batch must never be committed."""
        self.metrics.agent_alive.set(0)
        self.metrics.agent_crashes.inc()
        log.critical("ingest agent crashed; stopping the worker", exc_info=exc)
        for handler in logging.getLogger().handlers:
            handler.flush()
        os._exit(EXIT_AGENT_CRASHED)
