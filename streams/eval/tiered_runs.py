"""The tiered variants' worker runs side by side, while the evaluation goes on.

A worker's writer holds one core; a replay alone leaves the other one mostly
idle. So the tiered runs start together (at most ``concurrent`` at a time, in
the order given, the longest first) and the evaluation waits for a run only
when it reaches that variant. The fixed and rules policies plan on event time,
so a run beside another leaves their memory exactly as a run alone would; the
llm policy's rounds and budget are on the wall clock and feel the shared cores,
as they feel any machine's speed.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor

from streams.eval.pipeline import TieredRun
from streams.eval.watch import Status

__all__ = ["TieredRuns"]

StartRun = Callable[[str, Status], TieredRun]
"""Runs one tiered variant's worker to the end: ``start(variant, status)``."""


class TieredRuns:
    """Started on construction; ``result`` waits for one run; ``close`` ends the lot."""

    def __init__(
        self,
        names: Sequence[str],
        start: StartRun,
        status_for: Callable[[str], Status],
        concurrent: int = 2,
    ) -> None:
        if concurrent < 1:
            raise ValueError("concurrent must be >= 1")
        self._pool = ThreadPoolExecutor(max_workers=concurrent, thread_name_prefix="tiered")
        self._runs: dict[str, Future[TieredRun]] = {
            name: self._pool.submit(start, name, status_for(name)) for name in names
        }

    def __enter__(self) -> TieredRuns:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def result(self, name: str) -> TieredRun:
        """The finished run of ``name``; its exception if it failed."""
        return self._runs[name].result()

    def close(self) -> None:
        """Drop the runs not yet started and wait for the ones running (each stops its
        worker when it ends, failed or not)."""
        self._pool.shutdown(wait=True, cancel_futures=True)
