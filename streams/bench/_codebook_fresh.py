"""Freshness for ``bench codebook``: an item produced on the broker, timed until
``beliefstream serve`` returns it from ``GET .../candidates``.

The real path, each part its own process as in production: Tansu, the worker (items agent
-> writer child: catalogue write, MiniLM embedding, code assignment, LanceDB flush, then
the ack) and the HTTP server (its codebook follows the worker's rows every
``http_api._SYNC_EVERY_S``). The tenant is the first ``events`` ratings of ML-100K and the
movies they name, fitted by the worker itself once its thresholds are met. A probe is a
re-release (same text, new id) of the movie the probed user rated last, with a 5: one of
the user's query rows at full weight, so it belongs at the top of that user's candidates.
Each is produced, then ``candidates`` is polled every 5 ms; the first two warm the path
and are not counted. Probing starts once the first maintenance pass over the replayed
users is done (steady state); a compaction or a later pass that runs meanwhile delays a
probe, as it would in production.
"""

from __future__ import annotations

import json
import tempfile
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import numpy as np
from kafka import KafkaProducer
from rich.console import Console

from streams.bench.read import _start_server, _url
from streams.kafka.topics import ensure_topics
from streams.settings import CodebookSettings, Settings
from streams.tools.broker import free_port, start_broker
from streams.tools.datasets import load_dataset
from streams.tools.processes import WorkerProcess

__all__ = ["run_freshness"]

TENANT = "ml-100k"
_KEY = "bench-codebook-key"
_WARM = 2


def _produce(settings: Settings, topic: str, rows: list[dict[str, Any]], key: str) -> None:
    producer = KafkaProducer(bootstrap_servers=settings.bootstrap_servers, linger_ms=5)
    try:
        for row in rows:
            producer.send(topic, key=str(row[key]).encode(), value=json.dumps(row).encode())
        producer.flush()
    finally:
        producer.close()


def _wait(worker: WorkerProcess, name: str, at_least: float, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while worker.metric(name) < at_least:
        if worker.proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"worker never reached {name} >= {at_least}:\n{worker.log_tail()}")
        time.sleep(0.2)


def run_freshness(probes: int, console: Console, events: int = 20_000) -> dict[str, Any]:
    """``freshness_p50_s``/``_p99_s`` over ``probes`` items, and what the set-up took."""
    data = load_dataset("ml-100k", tenant=TENANT, limit=events)
    last = {r["user_id"]: r for r in data.interactions}  # each user's newest rating
    loved = Counter(r["user_id"] for r in data.interactions if r.get("value") == 5)
    user = max((u for u, r in last.items() if r.get("value") == 5), key=lambda u: loved[u])
    movies = {row["item_id"]: row for row in data.items}
    figures: dict[str, Any] = {"freshness_items": len(data.items), "freshness_events": events}
    with tempfile.TemporaryDirectory(prefix="beliefstream-bench-codebook-") as tmp:
        root = Path(tmp)
        broker = start_broker()
        worker: WorkerProcess | None = None
        server = None
        try:
            settings = Settings(
                bootstrap_servers=broker.bootstrap_servers,
                app_id=f"bench-codebook-{uuid.uuid4().hex[:8]}",
                lancedb_uri=str(root / "lancedb"), metrics_port=free_port(),
                serve_port=free_port(), api_keys={_KEY: TENANT}, reader_event_time=True,
                codebook=CodebookSettings(min_items=len(data.items) // 2,
                                          min_events=events // 2, check_s=1.0),
                round_clock="wall",  # maintenance paced as before
                _env_file=None,  # type: ignore[call-arg]
            )  # fmt: skip
            ensure_topics(settings)
            started = time.monotonic()
            console.print(f"freshness: {len(data.items)} movies and {events} ratings ...")
            _produce(settings, settings.topic_items, data.items, "item_id")
            _produce(settings, settings.topic_interactions, data.interactions, "user_id")
            worker = WorkerProcess(settings, root / "worker.log")
            _wait(worker, 'beliefstream_codebook_updates_total{kind="fit"}', 1)
            # Steady state: the first maintenance pass over every replayed user runs for seconds
            # in the same writer process, and an item batch would queue behind it.
            users = len({r["user_id"] for r in data.interactions})
            _wait(worker, "beliefstream_maintained_users_total", users)
            figures["freshness_setup_s"] = round(time.monotonic() - started, 1)
            server = _start_server(settings, root / "serve.log")
            figures |= _probe(settings, user, movies[last[user]["item_id"]], probes)
            figures["freshness_indexed_items"] = worker.metric(
                'beliefstream_codebook_items_indexed_total{outcome="indexed"}'
            )
        finally:
            if worker is not None:
                worker.stop()
            if server is not None:
                server.terminate()
                server.wait(timeout=15)
            broker.stop()
    return figures


def _probe(settings: Settings, user: str, movie: dict[str, Any], probes: int) -> dict[str, Any]:
    producer = KafkaProducer(bootstrap_servers=settings.bootstrap_servers, linger_ms=0)
    client = httpx.Client(base_url=_url(settings), headers={"X-API-Key": _KEY}, timeout=10)
    path = f"/v1/tenants/{TENANT}/users/{user}/candidates?k=100"
    samples: list[float] = []
    try:
        deadline = time.monotonic() + 60
        while client.get(path).status_code != 200:  # the server loads the tenant's codebook
            if time.monotonic() > deadline:
                raise RuntimeError(f"candidates never answered: {client.get(path).text}")
            time.sleep(0.2)
        for n in range(probes + _WARM):
            item = {**movie, "item_id": f"probe-{n}-{movie['item_id']}", "ts": time.time()}
            started = time.monotonic()
            producer.send(settings.topic_items, key=item["item_id"].encode(),
                          value=json.dumps(item).encode()).get(timeout=10)  # fmt: skip
            while item["item_id"] not in client.get(path).json()["items"]:
                if time.monotonic() - started > 30:
                    raise RuntimeError(f"probe {item['item_id']} never became a candidate")
                time.sleep(0.005)
            if n >= _WARM:
                samples.append(time.monotonic() - started)
    finally:
        producer.close()
        client.close()
    arr = np.array(samples)
    return {
        "freshness_p50_s": round(float(np.percentile(arr, 50)), 3),
        "freshness_p99_s": round(float(np.percentile(arr, 99)), 3),
        "freshness_max_s": round(float(arr.max()), 3),
        "freshness_probes": len(samples),
    }
