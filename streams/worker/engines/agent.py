"""Ingest engine 1: a Faust agent over the interactions topic.

``take_events`` acks a batch as soon as the loop body returns, so each message
gets one extra reference first: that early ack only drops it, and the real
ack (the one that makes the offset committable) comes after the batch is
stored. Batch k is written while Faust collects batch k+1; at most one batch
is in flight.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import faust

from streams.ingest.batch import Consumed
from streams.worker.ports import EnginePort

__all__ = ["install_agent_engine"]


def install_agent_engine(worker: EnginePort) -> None:
    settings, app = worker.settings, worker.app
    topic_name = settings.topic_interactions
    topic = app.topic(topic_name, value_serializer="raw", key_serializer="raw")

    def highwater(partition: int) -> int | None:
        return app.consumer.highwater(faust.types.TP(topic_name, partition))

    async def process(events: list[Any]) -> None:
        messages = [
            Consumed(m.topic, m.partition, m.offset, m.key, m.value)
            for m in (event.message for event in events)
        ]
        outcome = await worker.handle(messages)
        for event in events:  # stored, dead letters delivered: now committable
            event.ack()
        worker.observe_lag(outcome.positions, highwater)

    async def ingest(stream: Any) -> None:
        worker.metrics.agent_alive.set(1)
        in_flight: asyncio.Future[None] | None = None
        try:
            async for events in stream.take_events(settings.batch_size, settings.batch_seconds):
                batch = list(events)
                for event in batch:
                    event.message.incref()
                if in_flight is not None:
                    await in_flight
                in_flight = asyncio.ensure_future(process(batch))
                in_flight.add_done_callback(worker.die_on_failure)
        except asyncio.CancelledError:
            if in_flight is not None:  # let a started write finish and ack before shutdown
                with contextlib.suppress(BaseException):
                    await asyncio.wait_for(asyncio.shield(in_flight), timeout=30)
            raise
        except BaseException as exc:
            worker.die(exc)

    async def on_rebalance(sender: Any, /, *args: Any, signal: Any, **kwargs: Any) -> None:
        owned = [tp for tp in app.consumer.assignment() if tp.topic == topic_name]
        worker.metrics.assigned_partitions.set(len(owned))
        await worker.partitions_assigned({tp.partition for tp in owned})

    app.agent(topic, name="ingest")(ingest)
    app.on_partitions_assigned.connect(on_rebalance)
    app.on_partitions_revoked.connect(on_rebalance)
