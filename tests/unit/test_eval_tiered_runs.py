"""Tiered runs side by side, and the eval's stall guard on a worker (no processes)."""

from __future__ import annotations

import threading
import time
from typing import Any, cast

import pytest

from streams.eval.pipeline import TieredRun
from streams.eval.tiered_runs import TieredRuns
from streams.eval.watch import Status, wait_until
from streams.tools.processes import WorkerProcess


def _run(name: str) -> TieredRun:
    return TieredRun(name, "fixed", f"/tmp/{name}", 0, 0, {}, 0, 0, {}, {}, 0, 0, 0)


def _quiet(name: str) -> Status:
    return lambda text, done, total: None


def test_runs_start_in_order_at_most_concurrent_at_once_and_each_result_is_its_own() -> None:
    lock = threading.Lock()
    running, peak, started = 0, 0, []
    release = threading.Event()

    def start(name: str, status: Status) -> TieredRun:
        nonlocal running, peak
        with lock:
            started.append(name)
            running += 1
            peak = max(peak, running)
        release.wait(5)
        time.sleep(0.02)
        with lock:
            running -= 1
        return _run(name)

    with TieredRuns(["a", "b", "c"], start, _quiet, concurrent=2) as runs:
        time.sleep(0.2)
        assert started == ["a", "b"]  # the third waits for a free slot
        release.set()
        assert runs.result("c").variant == "c"
        assert runs.result("a").variant == "a"
    assert started == ["a", "b", "c"] and peak == 2


def test_a_failed_run_raises_when_its_result_is_asked_for_and_the_others_still_finish() -> None:
    def start(name: str, status: Status) -> TieredRun:
        if name == "bad":
            raise RuntimeError("worker exited (1)")
        return _run(name)

    with TieredRuns(["bad", "good"], start, _quiet, concurrent=1) as runs:
        with pytest.raises(RuntimeError, match="worker exited"):
            runs.result("bad")
        assert runs.result("good").variant == "good"


def test_concurrency_below_one_is_refused() -> None:
    with pytest.raises(ValueError, match="concurrent"):
        TieredRuns(["a"], lambda n, s: _run(n), _quiet, concurrent=0)


class _Alive:
    """Stands in for a running worker process: never exits, no log."""

    class proc:  # mirrors subprocess.Popen's attribute
        returncode = None

        @staticmethod
        def poll() -> None:
            return None

    @staticmethod
    def log_tail() -> str:
        return "(log)"


def _worker() -> WorkerProcess:
    return cast(WorkerProcess, _Alive())


def test_a_wait_that_keeps_progressing_outlives_its_timeout() -> None:
    count = [0.0]

    def progress() -> float:
        count[0] += 1
        return count[0]

    began = time.monotonic()
    wait_until(_worker(), lambda: time.monotonic() - began > 1.0, 0.5, "consuming",
               progress=progress)  # fmt: skip
    assert time.monotonic() - began > 1.0


def test_a_stalled_wait_times_out_and_says_it_stalled() -> None:
    with pytest.raises(RuntimeError, match="timed out after 0s without progress consuming"):
        wait_until(_worker(), lambda: False, 0.3, "consuming", progress=lambda: 7.0)


def test_without_a_progress_measure_the_timeout_bounds_the_whole_wait() -> None:
    ticks: list[Any] = []
    with pytest.raises(RuntimeError, match=r"timed out after 0s consuming:\n\(log\)"):
        wait_until(_worker(), lambda: False, 0.3, "consuming", tick=lambda: ticks.append(1))
    assert ticks
