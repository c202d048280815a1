"""Run ``beliefstream worker`` as a user would: a separate process configured by env vars."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

from streams.broker import free_port
from streams.settings import Settings

_SAMPLE = re.compile(r"^(beliefstream_[a-z_]+(?:\{[^}]*\})?) (\S+)$", re.M)


def settings_env(settings: Settings) -> dict[str, str]:
    env = {**os.environ}
    for name, value in settings.model_dump().items():
        if value is None:
            continue
        if isinstance(value, frozenset):
            value = ",".join(sorted(value))
        env[f"BELIEFSTREAM_{name.upper()}"] = str(value)
    return env


class WorkerProcess:
    def __init__(self, settings: Settings, log_path: Path) -> None:
        self.port = free_port()
        self.settings = settings.model_copy(update={"metrics_port": self.port})
        self.log_path = log_path
        self._log = log_path.open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "streams.cli", "worker"],
            env=settings_env(self.settings),
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )

    def metrics(self) -> dict[str, float]:
        url = f"http://127.0.0.1:{self.port}/metrics"
        with urllib.request.urlopen(url, timeout=2) as resp:
            text = resp.read().decode()
        return {name: float(value) for name, value in _SAMPLE.findall(text)}

    def metric(self, name: str) -> float:
        try:
            return self.metrics().get(name, 0.0)
        except OSError:
            return 0.0

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
        return self.log_path.read_text(errors="replace")[-4000:]

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30.0) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait()
            self._log.close()
