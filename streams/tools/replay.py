"""Produce a dataset into Kafka: the catalogue first, then interactions in time order.

Items go first so that the worker knows every item before an event refers to
it. Interactions are keyed by user id, so one user's events land in one
partition in timestamp order and the memory sees them as they happened.
Messages are sent without waiting for each acknowledgement; delivery futures
are awaited in chunks, which keeps the broker's batches full and still makes
any failed delivery raise.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any

from aiokafka import AIOKafkaProducer
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    Task,
    TextColumn,
    TimeElapsedColumn,
)
from rich.text import Text

from streams.kafka.options import producer_options
from streams.kafka.topics import ensure_topics
from streams.settings import Settings
from streams.tools.datasets import Dataset

__all__ = ["ReplayResult", "replay", "replay_async"]

# Delivery futures awaited at once: large enough to keep batches full, small enough
# to bound memory and to notice a failing broker early.
_CHUNK = 5000
# Progress is reported every this many sends, not per message: a refresh costs more.
_TICK = 250
# The pacer may catch up at most this much lag in one burst (token-bucket capacity).
_BURST_S = 0.1
# Sleeping for less than this costs more than it paces.
_MIN_SLEEP_S = 0.002


@dataclass(frozen=True)
class ReplayResult:
    """How many messages were produced, and the seconds from first send to last ack."""

    interactions: int
    items: int
    seconds: float


def replay(
    settings: Settings, dataset: Dataset, rate: float | None = None, progress: bool = True
) -> ReplayResult:
    """Blocking :func:`replay_async`, for the CLI and scripts."""
    return asyncio.run(replay_async(settings, dataset, rate=rate, progress=progress))


async def replay_async(
    settings: Settings, dataset: Dataset, rate: float | None = None, progress: bool = True
) -> ReplayResult:
    """Produce ``dataset``'s items, then its interactions (at most ``rate`` per second)."""
    if rate is not None and rate <= 0:
        raise ValueError(f"rate must be positive events per second, got {rate}")
    await asyncio.to_thread(ensure_topics, settings)
    producer = AIOKafkaProducer(**producer_options(settings, f"{settings.app_id}-replay"))
    await producer.start()
    try:
        started = time.perf_counter()
        await _produce(producer, settings.topic_items, "item_id", dataset.items)
        with _progress_bar(progress) as bar:
            task = bar.add_task("interactions", total=len(dataset.interactions))
            await _produce(
                producer,
                settings.topic_interactions,
                "user_id",
                dataset.interactions,
                pacer=_Pacer(rate) if rate else None,
                advance=lambda n: bar.advance(task, n),
            )
        await producer.flush()
        seconds = time.perf_counter() - started
    finally:
        await producer.stop()
    return ReplayResult(len(dataset.interactions), len(dataset.items), seconds)


async def _produce(
    producer: Any,
    topic: str,
    key_field: str,
    rows: Iterable[dict[str, Any]],
    pacer: _Pacer | None = None,
    advance: Callable[[int], None] | None = None,
) -> None:
    """Send ``rows`` keyed by ``key_field``; return once all are acknowledged."""
    pending: list[Awaitable[Any]] = []
    sent = 0
    for row in rows:
        if pacer is not None:
            await pacer.wait()
        key = row.get(key_field)
        pending.append(
            await producer.send(
                topic,
                value=json.dumps(row, separators=(",", ":")).encode(),
                key=None if key is None else str(key).encode(),
            )
        )
        sent += 1
        if advance is not None and sent % _TICK == 0:
            advance(_TICK)
        if len(pending) >= _CHUNK:
            await asyncio.gather(*pending)  # the first failed delivery raises
            pending.clear()
    await asyncio.gather(*pending)
    if advance is not None and sent % _TICK:
        advance(sent % _TICK)


class _Pacer:
    """Token bucket: ``rate`` sends per second, at most ``_BURST_S`` of catch-up."""

    def __init__(self, rate: float) -> None:
        self._interval = 1.0 / rate
        self._next = time.monotonic()

    async def wait(self) -> None:
        now = time.monotonic()
        ahead = self._next - now
        if ahead >= _MIN_SLEEP_S:
            await asyncio.sleep(ahead)
        self._next = max(self._next, now - _BURST_S) + self._interval


class _RateColumn(ProgressColumn):
    """Events per second, as rich measures them."""

    def render(self, task: Task) -> Text:
        speed = task.finished_speed or task.speed
        return Text(f"{speed:,.0f} ev/s" if speed else "? ev/s", style="progress.data.speed")


def _progress_bar(enabled: bool) -> Progress:
    return Progress(
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        _RateColumn(),
        TimeElapsedColumn(),
        disable=not enabled,
    )
