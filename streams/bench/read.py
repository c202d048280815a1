"""``beliefstream bench read``: how fast and how fresh rankers can read memory.

1. Build memory for N synthetic users through the store interface.
2. Python API from a separate process: cold (first read, LanceDB) and warm (cached) reads.
3. HTTP: ``beliefstream serve`` as its own process, loaded by concurrent clients.
4. Freshness: a real broker and worker; an event is produced for a user whose memory
   the server has cached, and timed until a read through the server shows it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import numpy as np
from kafka import KafkaProducer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from memory_store.lance.store import open_store
from streams.bench._read_build import TENANT, build_memory
from streams.kafka.topics import ensure_topics
from streams.settings import Settings
from streams.tools.broker import Broker, free_port, start_broker
from streams.tools.processes import WorkerProcess, settings_env

__all__ = ["run_read_bench"]

_KEY = "bench-read-key"


def _client(mode: str, args: dict[str, Any], env: dict[str, str]) -> dict[str, Any]:
    out = subprocess.run(
        [sys.executable, "-m", "streams.bench._read_client", mode, json.dumps(args)],
        env=env, capture_output=True, text=True, check=False, timeout=1800,
    )  # fmt: skip
    if out.returncode != 0:
        raise RuntimeError(f"bench client {mode} failed:\n{out.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def _settings(broker: Broker, root: Path) -> Settings:
    return Settings(
        bootstrap_servers=broker.bootstrap_servers,
        app_id=f"bench-read-{uuid.uuid4().hex[:8]}",
        lancedb_uri=str(root / "lancedb"),
        metrics_port=free_port(),
        serve_port=free_port(),
        api_keys={_KEY: TENANT},
        _env_file=None,  # type: ignore[call-arg]
    )


def _start_server(settings: Settings, log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as sink:
        proc = subprocess.Popen(
            [sys.executable, "-m", "streams.cli", "serve"],
            env=settings_env(settings), stdout=sink, stderr=subprocess.STDOUT,
        )  # fmt: skip
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"serve exited:\n{log.read_text()[-3000:]}")
        try:
            if httpx.get(f"{_url(settings)}/healthz", timeout=1).status_code == 200:
                return proc
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    proc.kill()
    raise RuntimeError(f"serve did not come up:\n{log.read_text()[-3000:]}")


def _url(settings: Settings) -> str:
    return f"http://{settings.serve_host}:{settings.serve_port}"


def _freshness(settings: Settings, users: list[str], probes: int) -> dict[str, Any]:
    """Produce one event per probe and time until the server's read of that user shows it."""
    producer = KafkaProducer(bootstrap_servers=settings.bootstrap_servers, linger_ms=0)
    client = httpx.Client(base_url=_url(settings), headers={"X-API-Key": _KEY})
    samples: list[float] = []
    try:
        for n in range(probes + 3):  # the first three warm the path up and are not counted
            user = users[n % len(users)]
            event_id = f"probe-{uuid.uuid4().hex}"
            path = f"/v1/tenants/{TENANT}/users/{user}/memory?k=1"
            client.get(path).raise_for_status()  # cached before the event exists
            event = {"event_id": event_id, "tenant": TENANT, "user_id": user,
                     "item_id": "probe-item", "type": "view", "ts": time.time()}  # fmt: skip
            started = time.monotonic()
            producer.send(settings.topic_interactions, key=user.encode(),
                          value=json.dumps(event).encode()).get(timeout=10)  # fmt: skip
            while time.monotonic() - started < 30:
                events = client.get(path).json()["events"]
                if events and events[0]["event_id"] == event_id:
                    break
                time.sleep(0.005)
            else:
                raise RuntimeError(f"probe {event_id} never became visible")
            if n >= 3:
                samples.append(time.monotonic() - started)
    finally:
        producer.close()
        client.close()
    arr = np.array(samples)
    return {
        "freshness_p50_s": round(float(np.percentile(arr, 50)), 3),
        "freshness_p99_s": round(float(np.percentile(arr, 99)), 3),
        "freshness_probes": len(samples),
    }


def run_read_bench(
    users: int,
    console: Console,
    chunks_per_user: int = 20,
    hot_users: int = 2000,
    reads: int = 20_000,
    http_seconds: float = 10.0,
    concurrency: int = 16,
    probes: int = 30,
) -> dict[str, Any]:
    """Run every phase; returns the JSON-ready results."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    results: dict[str, Any] = {"users": users, "chunks_per_user": chunks_per_user}
    with tempfile.TemporaryDirectory(prefix="beliefstream-bench-read-") as tmp:
        root = Path(tmp)
        broker = start_broker()
        procs: list[subprocess.Popen[bytes]] = []
        worker: WorkerProcess | None = None
        try:
            settings = _settings(broker, root)
            from memory_store.embedding import MiniLMEmbedder

            columns = (TextColumn("building memory"), BarColumn(), MofNCompleteColumn(),
                       TimeElapsedColumn())  # fmt: skip
            with Progress(*columns, console=console) as progress:
                task = progress.add_task("users", total=users)
                results["build_seconds"] = round(build_memory(
                    open_store(settings.lancedb_uri), users, chunks_per_user, MiniLMEmbedder(),
                    lambda n: progress.advance(task, n),
                ), 1)  # fmt: skip
            hot = min(hot_users, users)
            console.print("Python API (separate process) ...")
            results |= _client("py", {"uri": settings.lancedb_uri, "users": users, "hot": hot,
                                      "reads": reads, "tenant": TENANT}, env)  # fmt: skip
            ensure_topics(settings)
            console.print("HTTP (beliefstream serve) ...")
            procs.append(_start_server(settings, root / "serve.log"))
            hot_list = [f"u{u}" for u in range(hot)]
            results |= _client("http", {"url": _url(settings), "key": _KEY, "tenant": TENANT,
                                        "hot_users": hot_list, "seconds": http_seconds,
                                        "concurrency": concurrency}, env)  # fmt: skip
            console.print("freshness (broker + worker + serve) ...")
            worker = WorkerProcess(settings, root / "worker.log")
            deadline = time.monotonic() + 120
            while worker.metric("beliefstream_assigned_partitions") < 1:
                if worker.proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"worker did not start:\n{worker.log_tail()}")
                time.sleep(0.2)
            results |= _freshness(settings, hot_list[:50], probes)
        finally:
            if worker is not None:
                worker.stop()
            for proc in procs:
                proc.terminate()
                try:
                    proc.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    proc.kill()
            broker.stop()
    results["machine_cpus"] = os.cpu_count()
    return results
