"""The worker as a child process, with the waiting helpers the tests need."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from streams.settings import Settings
from streams.tools.broker import free_port
from streams.tools.processes import WorkerProcess


class TestWorker(WorkerProcess):
    __test__ = False

    def __init__(self, settings: Settings, log_path: Path) -> None:
        super().__init__(settings.model_copy(update={"metrics_port": free_port()}), log_path)

    def wait_for(self, predicate: Callable[[], bool], timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"worker exited {self.proc.returncode}:\n{self.log()}")
            if predicate():
                return
            time.sleep(0.1)
        raise AssertionError(f"timed out after {timeout}s; worker log:\n{self.log()}")

    def log(self) -> str:
        return self.log_tail()
