"""The worker's side of the writer process: submit work, get futures back.

The child runs in a spawned process (``streams.worker.writer.child``); each call
here names one ``WriterChild`` method and its arguments. If the child dies, every
pending and later future fails with BrokenProcessPool, which the worker treats as
fatal (the batch was not acknowledged, so nothing is lost).
"""

from __future__ import annotations

import multiprocessing
from concurrent.futures import Future, ProcessPoolExecutor

from planner.state import Deferred, PlanRound, Request
from streams.ingest.batch import Consumed
from streams.settings import Settings
from streams.worker.writer.child import open_child, run_in_child
from streams.worker.writer.codebook import UpkeepOutcome
from streams.worker.writer.outcomes import BatchOutcome, ItemsOutcome, MaintainOutcome, RoundOutcome

__all__ = ["MemoryWriter"]


class MemoryWriter:
    """One writer process per worker: the only writer of its memory, so writes never race."""

    def __init__(self, settings: Settings) -> None:
        self._pool = ProcessPoolExecutor(
            max_workers=1,
            mp_context=multiprocessing.get_context("spawn"),  # never fork a threaded process
            initializer=open_child,
            initargs=(settings,),  # the whole settings object, pickled (secrets included)
        )
        # Start the child and load MiniLM now: the pool would otherwise start on the first batch.
        self._pool.submit(run_in_child, "warm_up")

    def write(self, messages: list[Consumed]) -> Future[BatchOutcome]:
        # Plain tuples pickle ~3x faster than named tuples: this is most of the hand-over cost.
        return self._pool.submit(run_in_child, "write_rows", list(map(tuple, messages)))

    def write_items(self, messages: list[Consumed]) -> Future[ItemsOutcome]:
        return self._pool.submit(run_in_child, "write_item_rows", list(map(tuple, messages)))

    def plan_round(self, max_users: int | None = None) -> Future[PlanRound]:
        return self._pool.submit(run_in_child, "plan_round", max_users)

    def close_idle(self, idle_s: float, caught_up: set[int]) -> Future[list[RoundOutcome]]:
        """Close the open event-time round of ``caught_up`` partitions quiet for ``idle_s``."""
        return self._pool.submit(run_in_child, "close_idle", idle_s, caught_up)

    def recover(self, partitions: set[int]) -> Future[MaintainOutcome]:
        """Look again at users of newly owned partitions that a crash left unmaintained."""
        return self._pool.submit(run_in_child, "recover", sorted(partitions))

    def run_planned(
        self, requests: list[Request], deferred: list[Deferred]
    ) -> Future[MaintainOutcome]:
        return self._pool.submit(run_in_child, "run_planned", requests, deferred)

    def compact(self) -> Future[None]:
        return self._pool.submit(run_in_child, "compact")

    def codebook_upkeep(self) -> Future[UpkeepOutcome]:
        """Fit tenants that became ready, refresh those due (``streams.worker.writer.codebook``)."""
        return self._pool.submit(run_in_child, "codebook_upkeep")

    def codebook_install(self) -> Future[UpkeepOutcome]:
        """Install first fits that finished in the child's background (cheap)."""
        return self._pool.submit(run_in_child, "codebook_install")

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=False)
