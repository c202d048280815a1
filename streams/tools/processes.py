"""Start ``beliefstream worker`` as a child process configured from a Settings object.

The demo, the benchmarks and the tests all run the worker exactly as an
operator does (its own process, settings in ``BELIEFSTREAM_*`` variables), so
what they measure and check is the real thing.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path
from typing import IO

from pydantic import BaseModel, SecretStr

from streams.settings import Settings

__all__ = ["WorkerProcess", "settings_env"]

_SAMPLE = re.compile(r"^(beliefstream_[a-z_]+(?:\{[^}]*\})?) (\S+)$", re.M)


def settings_env(settings: Settings) -> dict[str, str]:
    """This process's environment plus ``settings`` spelled as BELIEFSTREAM_* variables
    (a nested model's fields by their flat names, e.g. BELIEFSTREAM_STORAGE_ENDPOINT)."""
    env = {**os.environ}
    for name in type(settings).model_fields:
        value = getattr(settings, name)
        if isinstance(value, BaseModel):
            for sub in type(value).model_fields:
                _put(env, f"BELIEFSTREAM_{name.upper()}_{sub.upper()}", getattr(value, sub))
        else:
            _put(env, f"BELIEFSTREAM_{name.upper()}", value)
    return env


def _put(env: dict[str, str], name: str, value: object) -> None:
    if value is None:
        return
    if isinstance(value, SecretStr):  # the child needs the secret itself
        value = value.get_secret_value()
    elif isinstance(value, frozenset):
        value = ",".join(sorted(value))
    elif isinstance(value, tuple):
        value = ",".join(value)
    elif isinstance(value, dict):
        value = json.dumps(value)
    env[name] = str(value)


class WorkerProcess:
    """A running worker, its log file and its /metrics endpoint."""

    def __init__(self, settings: Settings, log_path: Path) -> None:
        if not settings.metrics_port:
            raise ValueError("a child worker needs a metrics port to be observed")
        self.settings = settings
        self.log_path = log_path
        self._log: IO[bytes] = log_path.open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "streams.cli", "worker"],
            env=settings_env(settings),
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )

    def metrics(self) -> dict[str, float]:
        """Every beliefstream sample on /metrics; raises OSError until the endpoint is up."""
        url = f"http://127.0.0.1:{self.settings.metrics_port}/metrics"
        with urllib.request.urlopen(url, timeout=2) as resp:
            text = resp.read().decode()
        return {name: float(value) for name, value in _SAMPLE.findall(text)}

    def metric(self, name: str) -> float:
        """One sample, 0 while the endpoint is not up yet."""
        try:
            return self.metrics().get(name, 0.0)
        except OSError:
            return 0.0

    def log_tail(self, chars: int = 4000) -> str:
        return self.log_path.read_text(errors="replace")[-chars:]

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30.0) -> int:
        """Signal the worker and wait; kill it if it does not stop in time."""
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait()
        finally:
            self._log.close()
