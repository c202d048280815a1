"""The worker: a Faust app whose ingest engine turns interactions into memory.

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
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import BrokenExecutor, Future
from pathlib import Path
from typing import Any

import faust

from memory_store.change_notice import ChangeNotice, encode_notices
from streams.ingest.batch import Consumed, DeadLetter, dead_letter_headers
from streams.kafka.options import faust_options
from streams.settings import Settings
from streams.worker.health import HEARTBEAT_S, Health
from streams.worker.metrics import WorkerMetrics
from streams.worker.planner_loop import PlannerLoop
from streams.worker.writer.client import MemoryWriter
from streams.worker.writer.codebook import IndexOutcome, UpkeepOutcome
from streams.worker.writer.outcomes import BatchOutcome, ItemsOutcome, MaintainOutcome, Notice

__all__ = ["EXIT_AGENT_CRASHED", "IngestWorker", "faust_app"]

log = logging.getLogger(__name__)

EXIT_AGENT_CRASHED = 70
# While a first codebook fit runs in the writer child, how often to look whether it finished.
_FIT_POLL_S = 1.0


def faust_app(settings: Settings) -> faust.App:
    """A Faust app tuned for throughput on raw bytes (see the ingest benchmark notes)."""
    return faust.App(
        settings.app_id,
        **faust_options(settings),
        value_serializer="raw",
        key_serializer="raw",
        stream_buffer_maxsize=65536,
        stream_wait_empty=False,
        web_enabled=False,
        store="memory://",
        # Tables live in memory: Faust's data folder holds nothing, so keep it out of the cwd.
        datadir=str(_faust_dir() / "{conf.id}-data"),
    )


def _faust_dir() -> Path:
    """A folder for Faust's (empty) data dirs; Faust itself creates only the last level."""
    folder = Path(tempfile.gettempdir()) / "beliefstream-faust"
    folder.mkdir(exist_ok=True)
    return folder


class IngestWorker:
    """Owns the Faust app, the memory writer process, the metrics and the chosen engine."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.metrics = WorkerMetrics()
        self.writer = MemoryWriter(settings)
        self._commits_since_compact = 0
        # Per partition, the lag after its last batch: only a caught-up partition is quiet.
        self.lag: dict[int, int] = {}
        # Set once the catalogue consumer has stored every item there was (see catalogue_read).
        self.catalogue_caught_up = asyncio.Event()
        self.stopping = False
        self.app = faust_app(settings)
        self.app.on_before_shutdown.connect(self._on_before_shutdown)
        self._dlq = self.raw_topic(settings.topic_dlq)
        self._items_dlq = self.raw_topic(settings.topic_items_dlq)
        self._changes = self.raw_topic(settings.topic_changes)
        self.app.timer(settings.compact_every_s)(self._compact_on_timer)
        self.health = Health(self.metrics)  # /healthz and /readyz (``streams.worker.health``)
        self.app.timer(HEARTBEAT_S)(self._heartbeat)
        self.planner = PlannerLoop(self)
        every = settings.round_idle_s / 2 if settings.event_rounds else settings.maintain_every_s
        self.app.timer(every)(self._plan_on_timer)
        if settings.ingest_engine == "faust-agent":
            from streams.worker.engines.agent import install_agent_engine

            self.app.agent(self.raw_topic(settings.topic_items), name="items")(self._consume_items)
            install_agent_engine(self)
        else:
            from streams.worker.engines.batch import install_batch_engine

            install_batch_engine(self)
        self.app.timer(settings.codebook.check_s)(self._codebook_on_timer)

    def raw_topic(self, name: str) -> Any:
        return self.app.topic(name, value_serializer="raw", key_serializer="raw")

    async def partitions_assigned(self, partitions: set[int]) -> None:
        """The interactions partitions this worker now owns (after every rebalance).

        Users a crash left unmaintained (or waiting for an item) are looked at again first.
        """
        recovered = await asyncio.wrap_future(self.writer.recover(partitions))
        await self.publish_notices(recovered.notices)
        self.planner.own(partitions)
        if recovered.scheduled is not None:
            self.metrics.scheduled_ops.set(recovered.scheduled)

    async def catalogue_read(self) -> None:
        """Wait (at most ``catalogue_wait_s``) until the items produced before the start are
        stored, so a replay's events never wait for an item that was already there: the
        memory does not depend on which consumer ran first."""
        if self.settings.ingest_engine != "batch":
            return  # Faust's items agent gives no caught-up signal
        try:
            await asyncio.wait_for(self.catalogue_caught_up.wait(), self.settings.catalogue_wait_s)
        except TimeoutError:
            log.warning("the catalogue did not catch up in %.0fs; reading events anyway",
                        self.settings.catalogue_wait_s)  # fmt: skip

    async def send_all(self, topic: Any, messages: list[tuple[Any, bytes, Any]]) -> None:
        """Send (key, value, headers) messages and wait until the broker has them all."""
        deliveries = [
            await topic.send(key=key, value=value, headers=headers)
            for key, value, headers in messages
        ]
        if deliveries:
            await asyncio.gather(*deliveries)

    async def _dead_letters(self, topic: Any, dead: list[DeadLetter]) -> None:
        letters = [(d.source.key, d.source.value or b"", dead_letter_headers(d)) for d in dead]
        await self.send_all(topic, letters)

    async def publish_notices(self, notices: list[Notice]) -> None:
        """Tell readers whose memory changed; done before the batch may commit."""
        batched = encode_notices([ChangeNotice(*n) for n in notices])
        await self.send_all(self._changes, [(key, value, None) for key, value in batched])
        self.metrics.notices_sent.inc(len(notices))

    async def handle(self, messages: list[Consumed]) -> BatchOutcome:
        """Store and absorb a batch, deliver its dead letters and change notices.

        The caller acks or commits only after this returns.
        """
        outcome = await asyncio.wrap_future(self.writer.write(messages))
        self.metrics.batch_write_seconds.observe(outcome.write_seconds)
        await self._dead_letters(self._dlq, outcome.dead)
        await self.publish_notices(outcome.notices)
        await self.planner.publish_rounds(outcome.rounds)
        self.metrics.users_changed.labels("absorb").inc(outcome.changed_users)
        self.metrics.consumed.inc(outcome.consumed)
        self.metrics.batch_size.observe(outcome.consumed)
        for letter in outcome.dead:
            self.metrics.rejected.labels(letter.reason.value).inc()
        self.metrics.written.inc(outcome.inserted)
        self.metrics.duplicates.inc(outcome.valid - outcome.inserted)
        self.metrics.last_write.set(time.time())
        # A planner round commits as much as a batch (deltas, change log, planner state).
        self._commits_since_compact += 1 + len(outcome.rounds)
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
                self.lag[partition] = lag

    def die_on_failure(self, done: asyncio.Future[Any]) -> None:
        """Done-callback for in-flight batches: any failure is fatal."""
        if not done.cancelled() and (exc := done.exception()) is not None:
            self.die(exc)

    async def _on_before_shutdown(
        self, sender: Any, /, *args: Any, signal: Any, **kwargs: Any
    ) -> None:
        self.stopping = True
        self.planner.close()

    def die(self, exc: BaseException) -> None:
        """End the process at once: nothing of the failed batch may be committed.

        During a graceful stop the producer goes away under the last batches;
        they simply stay uncommitted and are replayed (idempotently) after restart.
        """
        if self.stopping:
            log.warning(
                "a batch was left uncommitted by the shutdown and will be replayed: %r", exc
            )
            return
        self.metrics.agent_alive.set(0)
        self.metrics.agent_crashes.inc()
        log.critical("ingest agent crashed; stopping the worker", exc_info=exc)
        for handler in logging.getLogger().handlers:
            handler.flush()
        os._exit(EXIT_AGENT_CRASHED)

    async def handle_items(self, messages: list[Consumed]) -> ItemsOutcome:
        """Store (and index) a catalogue batch, deliver its dead letters; then it may commit."""
        outcome = await asyncio.wrap_future(self.writer.write_items(messages))
        await self._dead_letters(self._items_dlq, outcome.dead)
        self.metrics.items_stored.inc(outcome.stored)
        self.record_indexing(outcome.codebook)
        await self.publish_notices(outcome.notices)
        for outcome_name, count in outcome.tagging.items():
            self.metrics.items_tagged.labels(outcome_name).inc(count)
        for letter in outcome.dead:
            self.metrics.items_rejected.labels(letter.reason.value).inc()
        return outcome

    async def _consume_items(self, stream: Any) -> None:
        """The Faust items agent (faust-agent engine; the batch engine has its own consumer)."""
        try:
            # A short window: an item is waited for by rankers (freshness), not by throughput.
            async for events in stream.take_events(1000, min(self.settings.batch_seconds, 0.1)):
                batch = list(events)
                for event in batch:
                    event.message.incref()
                messages = [
                    Consumed(m.topic, m.partition, m.offset, m.key, m.value)
                    for m in (event.message for event in batch)
                ]
                await self.handle_items(messages)
                for event in batch:
                    event.ack()
        except asyncio.CancelledError:
            raise
        except BaseException as exc:
            self.die(exc)

    async def _plan_on_timer(self) -> None:
        """The planner's round: whichever policy (fixed, rules, llm) decides, the loop runs it."""
        try:
            await self.planner.tick()
        except asyncio.CancelledError:
            raise
        except BaseException as exc:
            self.die(exc)

    def record_maintenance(self, outcome: MaintainOutcome) -> None:
        self.metrics.maintained_users.inc(outcome.users)
        self.metrics.users_changed.labels("maintain").inc(outcome.changed_users)
        self.metrics.maintain_seconds.observe(outcome.seconds)
        self.metrics.maintain_pending.set(outcome.pending_users)
        if outcome.scheduled is not None:
            self.metrics.scheduled_ops.set(outcome.scheduled)
        for source, count in outcome.narratives.items():
            self.metrics.narratives.labels(source).inc(count)
        for op, count in outcome.ops.items():
            self.metrics.ops_run.labels(op).inc(count)

    def record_indexing(self, outcome: IndexOutcome) -> None:
        self.metrics.codebook_items.labels("indexed").inc(outcome.indexed)
        self.metrics.codebook_items.labels("unindexed").inc(outcome.unindexed)
        for seconds in outcome.assign_seconds:
            self.metrics.codebook_assign_seconds.observe(seconds)

    async def _codebook_on_timer(self) -> None:
        """Start first fits of tenants with enough data (they run in the writer child's
        background), refresh those due, then install each fit as soon as it finishes."""
        outcome = await self._codebook_task(self.writer.codebook_upkeep)
        while outcome is not None and outcome.running:
            await asyncio.sleep(_FIT_POLL_S)
            outcome = await self._codebook_task(self.writer.codebook_install)

    async def _codebook_task(
        self, submit: Callable[[], Future[UpkeepOutcome]]
    ) -> UpkeepOutcome | None:
        try:
            outcome = await asyncio.wrap_future(submit())
        except asyncio.CancelledError:
            raise
        except BrokenExecutor as exc:
            self.die(exc)
            return None
        except Exception as exc:
            self.metrics.codebook_updates.labels("error").inc()
            log.error("item codebook upkeep failed; the next one retries: %r", exc)
            return None
        self.record_upkeep(outcome)
        return outcome

    def record_upkeep(self, outcome: UpkeepOutcome) -> None:
        m = self.metrics
        m.codebook_updates.labels("fit").inc(len(outcome.fitted))
        m.codebook_updates.labels("refresh").inc(len(outcome.refreshed))
        m.codebook_updates.labels("error").inc(len(outcome.failed))
        for f in outcome.facets:
            m.codebook_indexed.labels(f.tenant, f.facet).set(f.items)
            m.codebook_utilisation.labels(f.tenant, f.facet).set(f.utilisation)
            for quantile, size in (("p50", f.leaf_p50), ("p99", f.leaf_p99), ("max", f.leaf_max)):
                m.codebook_leaf_size.labels(f.tenant, f.facet, quantile).set(size)
            if f.churn is not None:
                m.codebook_churn.labels(f.tenant, f.facet).set(f.churn)

    async def _heartbeat(self) -> None:
        self.health.beat()

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
