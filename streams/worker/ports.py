"""What the ingest engines and the planner loop may use of the worker.

They are given the worker, but see it through these Protocols, so they depend on
a narrow face (and tests can hand them a fake) instead of on ``IngestWorker``,
which in turn builds them: no import circle.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any, Protocol

import faust

from streams.ingest.batch import Consumed
from streams.settings import Settings
from streams.worker.metrics import WorkerMetrics
from streams.worker.writer.client import MemoryWriter
from streams.worker.writer.outcomes import BatchOutcome, ItemsOutcome, MaintainOutcome, Notice

__all__ = ["EnginePort", "PlannerPort"]


class _WorkerBase(Protocol):
    settings: Settings
    metrics: WorkerMetrics
    app: faust.App
    # Per partition, the lag after its last batch.
    lag: dict[int, int]


class EnginePort(_WorkerBase, Protocol):
    """An ingest engine consumes; the worker stores, sends dead letters and dies loudly."""

    catalogue_caught_up: asyncio.Event

    async def partitions_assigned(self, partitions: set[int]) -> None: ...
    async def catalogue_read(self) -> None: ...
    async def handle(self, messages: list[Consumed]) -> BatchOutcome: ...
    async def handle_items(self, messages: list[Consumed]) -> ItemsOutcome: ...
    def observe_lag(
        self, positions: dict[int, int], highwater: Callable[[int], int | None]
    ) -> None: ...
    def die_on_failure(self, done: asyncio.Future[Any]) -> None: ...
    def die(self, exc: BaseException) -> None: ...


class PlannerPort(_WorkerBase, Protocol):
    """The planner loop runs rounds in the writer and publishes what they did."""

    writer: MemoryWriter

    def raw_topic(self, name: str) -> Any: ...
    async def send_all(self, topic: Any, messages: list[tuple[Any, bytes, Any]]) -> None: ...
    async def publish_notices(self, notices: list[Notice]) -> None: ...
    def record_maintenance(self, outcome: MaintainOutcome) -> None: ...
