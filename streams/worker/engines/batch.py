"""Ingest engine 2: a batch consumer (aiokafka ``getmany``) running as a Faust app task.

Faust hands every message through several tasks and queues before an agent
sees it (~70-100 µs of main-thread time per message here); this engine takes
whole fetches instead, so the worker's cost per event is the decode and the
write in the memory writer process. It keeps the same guarantees as the agent:
offsets are committed only after the batch is stored and its dead letters are
delivered, and a revoked partition's in-flight batches are finished and
committed before it is handed over. Two batches may be in flight (the writer
process then always has the next one queued); commits stay in order because
each batch commits only after the one before it.
Its consumer group is ``<app_id>-ingest``.

The same engine also consumes the catalogue (``items``, group ``<app_id>-items``) with
a short batch window: a ranker waits for a new item to become a candidate, and
Faust's own consumer fetches with a fixed 1.5 s wait.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import CommitFailedError, IllegalStateError
from aiokafka.structs import OffsetAndMetadata

from streams.ingest.batch import Consumed
from streams.kafka.options import group_consumer_options
from streams.worker.ports import EnginePort

__all__ = ["BatchEngine", "Feed", "install_batch_engine"]

log = logging.getLogger(__name__)

# A fetch this long without new messages means the stream is idle: write what we have.
_IDLE_MS = 20


@dataclass(frozen=True, slots=True)
class Feed:
    """One topic the engine consumes: its group, its batch shape and what stores a batch."""

    topic: str
    group: str
    batch_size: int
    batch_seconds: float
    handle: Callable[[list[Consumed]], Awaitable[object]]
    # The interactions feed owns users: its assignment drives the planner and the metric.
    owns_users: bool = False


def install_batch_engine(worker: EnginePort) -> None:
    """Interactions and items, each through its own batch consumer (both Faust app tasks)."""
    s = worker.settings
    interactions = Feed(s.topic_interactions, f"{s.app_id}-ingest", s.batch_size,
                        s.batch_seconds, worker.handle, owns_users=True)  # fmt: skip
    items = Feed(s.topic_items, f"{s.app_id}-items", 1000, min(s.batch_seconds, 0.1),
                 worker.handle_items)  # fmt: skip
    for feed in (interactions, items):
        worker.app.task(BatchEngine(worker, feed).run)


class BatchEngine(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, worker: EnginePort, feed: Feed) -> None:
        self.worker = worker
        self.settings = worker.settings
        self.feed = feed
        self.topic = feed.topic
        self._in_flight: asyncio.Future[None] | None = None
        self._before_previous: asyncio.Future[None] | None = None
        self._consumer: AIOKafkaConsumer | None = None

    async def run(self) -> None:
        s, feed = self.settings, self.feed
        consumer = AIOKafkaConsumer(
            **group_consumer_options(s, feed.group, feed.batch_size, feed.batch_seconds)
        )
        self._consumer = consumer
        consumer.subscribe([self.topic], listener=self)
        self.worker.metrics.agent_alive.set(1)
        try:
            await consumer.start()
            if feed.owns_users:  # items already produced are known before the events naming them
                await self.worker.catalogue_read()
            while True:
                batch = await self._next_batch(consumer)
                if not batch:
                    if feed.owns_users:
                        await self._note_caught_up(consumer)
                    elif await self._read_all(consumer):
                        if self._in_flight is not None:
                            await self._in_flight
                        self.worker.catalogue_caught_up.set()
                    continue
                previous = self._in_flight
                if previous is not None and self._before_previous is not None:
                    await self._before_previous  # at most two batches in flight
                self._before_previous = previous
                self._in_flight = asyncio.ensure_future(
                    self._store_and_commit(consumer, batch, previous)
                )
                self._in_flight.add_done_callback(self.worker.die_on_failure)
        except asyncio.CancelledError:
            await self._finish_in_flight()
            await consumer.stop()
            raise
        except BaseException as exc:
            self.worker.die(exc)

    async def _note_caught_up(self, consumer: AIOKafkaConsumer) -> None:
        """Nothing came: partitions fetched up to their high watermark have no lag (even
        those that brought no batch since the start, so their open rounds can close)."""
        for tp in consumer.assignment():
            if await consumer.position(tp) >= await self._high(consumer, tp):
                self.worker.lag[tp.partition] = 0

    @staticmethod
    async def _high(consumer: AIOKafkaConsumer, tp: TopicPartition) -> int:
        """The fetch high watermark; for a partition no fetch brought records from (an
        empty one), the broker's end offset."""
        high = consumer.highwater(tp)
        if high is None:
            high = (await consumer.end_offsets([tp]))[tp]
        return int(high)

    async def _read_all(self, consumer: AIOKafkaConsumer) -> bool:
        """Whether every assigned partition was fetched up to its high watermark."""
        assigned = consumer.assignment()
        if not assigned:
            return False
        for tp in assigned:
            if await consumer.position(tp) < await self._high(consumer, tp):
                return False
        return True

    async def _next_batch(self, consumer: AIOKafkaConsumer) -> list[Consumed]:
        """Up to batch_size messages, within batch_seconds, or fewer as soon as the stream idles.

        Once something arrived, a fetch that brings nothing within ``_IDLE_MS`` ends
        the batch: an idle stream gets low latency, a busy one full batches.
        """
        size, deadline = self.feed.batch_size, time.monotonic() + self.feed.batch_seconds
        batch: list[Consumed] = []
        while len(batch) < size:
            remaining = deadline - time.monotonic()
            if remaining <= 0 and batch:
                break
            wait_ms = max(int(remaining * 1000), 0)
            fetched = await consumer.getmany(
                timeout_ms=min(wait_ms, _IDLE_MS) if batch else wait_ms,
                max_records=size - len(batch),
            )
            got = 0
            for records in fetched.values():
                got += len(records)
                batch.extend(
                    Consumed(r.topic, r.partition, r.offset, r.key, r.value) for r in records
                )
            if remaining <= 0 or (batch and not got):
                break
        return batch

    async def _store_and_commit(
        self,
        consumer: AIOKafkaConsumer,
        batch: list[Consumed],
        previous: asyncio.Future[None] | None,
    ) -> None:
        await self.feed.handle(batch)
        if previous is not None:
            await previous  # never commit past a batch that is not committed yet
        positions: dict[int, int] = {}
        for message in batch:
            positions[message.partition] = max(message.offset, positions.get(message.partition, -1))
        offsets = {
            TopicPartition(self.topic, partition): OffsetAndMetadata(offset + 1, "")
            for partition, offset in positions.items()
        }
        try:
            await consumer.commit(offsets)
        except (CommitFailedError, IllegalStateError) as exc:
            # The events are stored; the partition's next owner replays them harmlessly.
            self.worker.metrics.commit_failures.inc()
            log.warning("offset commit after a stored batch failed (rebalance?): %r", exc)
        if self.feed.owns_users:
            self.worker.observe_lag(
                positions, lambda p: consumer.highwater(TopicPartition(self.topic, p))
            )

    async def _finish_in_flight(self) -> None:
        if self._in_flight is not None:
            with contextlib.suppress(BaseException):
                await asyncio.wait_for(asyncio.shield(self._in_flight), timeout=30)

    async def on_partitions_revoked(self, revoked: Any) -> None:
        await self._finish_in_flight()

    async def on_partitions_assigned(self, assigned: Any) -> None:
        if self._consumer is not None and self.feed.owns_users:
            owned = self._consumer.assignment()
            self.worker.metrics.assigned_partitions.set(len(owned))
            await self.worker.partitions_assigned({tp.partition for tp in owned})
