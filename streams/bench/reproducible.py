"""Is the memory a function of the stream? One MovieLens replay, three worker runs, compared.

The dataset is produced once to an embedded broker. Three fresh workers (own
consumer group, own LanceDB) read it with maintenance on: batches of 5,000, of
211, and of 1,000 with a SIGKILL once a third of the events are stored and a
restart. Each run is let settle (every event stored, the planner's counters
still for ``quiet_s``), then the second and the third store are compared with
the first (``memory_store.compare``): users and chunks differing, the largest
strength difference, profiles on each side.
"""

from __future__ import annotations

import signal
import tempfile
import time
from pathlib import Path
from typing import Any

from rich.console import Console

from memory_store.compare import diff_stores
from memory_store.lance.store import open_store
from streams.settings import Settings
from streams.tools.broker import free_port, start_broker
from streams.tools.datasets import load_dataset
from streams.tools.processes import WorkerProcess
from streams.tools.replay import replay

__all__ = ["run_reproducible_bench"]

_ACTIVITY = (
    "beliefstream_events_written_total",
    "beliefstream_maintained_users_total",
    'beliefstream_users_changed_total{phase="maintain"}',
    "beliefstream_change_notices_total",
)


def _settle(worker: WorkerProcess, uri: str, tenant: str, events: int, quiet_s: float) -> None:
    """Wait for every event in the store, then for ``quiet_s`` without maintenance activity."""
    deadline = time.monotonic() + 1800
    while open_store(uri).count_events(tenant) < events:
        if worker.proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"the worker stopped short:\n{worker.log_tail()}")
        time.sleep(0.5)
    last, still_since = None, time.monotonic()
    while time.monotonic() - still_since < quiet_s:
        now = tuple(worker.metric(name) for name in _ACTIVITY)
        if now != last:
            last, still_since = now, time.monotonic()
        time.sleep(0.5)


def _profiles(uri: str, tenant: str) -> int:
    store = open_store(uri)
    keys = store.list_users(tenant)
    return sum(s.profile is not None for s in store.read_snapshots(keys, 0).values())


def run_reproducible_bench(
    console: Console,
    dataset: str = "ml-100k",
    limit: int | None = None,
    round_event_s: float = 86_400.0,
    quiet_s: float = 20.0,
    extra: dict[str, Any] | None = None,
    data_dir: Path | None = None,
) -> dict[str, Any]:
    """The three runs and their comparisons, as a JSON-ready dict."""
    data = load_dataset(dataset, limit=limit)
    tenant = str(data.interactions[0]["tenant"])
    events = len({e["event_id"] for e in data.interactions})
    broker = start_broker()
    results: dict[str, Any] = {"dataset": dataset, "events": events, "runs": {}}
    try:
        with tempfile.TemporaryDirectory(prefix="beliefstream-repro-") as tmp:
            root = data_dir or Path(tmp)
            root.mkdir(parents=True, exist_ok=True)
            base = _settings(broker.bootstrap_servers, root, round_event_s, extra or {})
            replay(base, data, progress=False)
            uris: dict[str, str] = {}
            for name, batch, kill in (("batch_5000", 5000, False), ("batch_211", 211, False),
                                      ("batch_1000_killed", 1000, True)):  # fmt: skip
                run = base.model_copy(update={
                    "app_id": f"repro-{name}", "lancedb_uri": str(root / name),
                    "batch_size": batch, "metrics_port": free_port(),
                })  # fmt: skip
                started = time.monotonic()
                worker = WorkerProcess(run, root / f"{name}.log")
                if kill:
                    _wait_stored(worker, run.lancedb_uri, tenant, events // 3)
                    worker.stop(signal.SIGKILL)
                    worker = WorkerProcess(run, root / f"{name}.log")
                _settle(worker, run.lancedb_uri, tenant, events, quiet_s)
                rounds = {t: worker.metric(f'beliefstream_planner_rounds_total{{trigger="{t}"}}')
                          for t in ("boundary", "idle")}  # fmt: skip
                code = worker.stop()
                uris[name] = run.lancedb_uri
                results["runs"][name] = {
                    "batch_size": batch, "killed": kill, "exit_code": code,
                    "seconds": round(time.monotonic() - started, 1),
                    "profiles": _profiles(run.lancedb_uri, tenant),
                    "rounds_after_restart" if kill else "rounds": rounds,
                }  # fmt: skip
                console.print(name, results["runs"][name])
            reference = open_store(uris["batch_5000"])
            for name in ("batch_211", "batch_1000_killed"):
                found = diff_stores(reference, open_store(uris[name]), tenant)
                results[f"batch_5000_vs_{name}"] = {
                    "users": found.users,
                    "users_differing": len(found.differing),
                    "chunks_differing": found.chunks_differing,
                    "profiles_differing": sum(bool(d.profile) for d in found.differing),
                    "max_strength_diff": found.max_strength_diff,
                }
                console.print(name, results[f"batch_5000_vs_{name}"])
    finally:
        broker.stop()
    return results


def _settings(servers: str, root: Path, every_s: float, extra: dict[str, Any]) -> Settings:
    fields: dict[str, Any] = {
        "bootstrap_servers": servers,
        "lancedb_uri": str(root / "unused"),
        "round_event_s": every_s,
        "round_idle_s": 5.0,
        "codebook": {"enabled": False},
        **extra,
    }
    known = {k: v for k, v in fields.items() if k in Settings.model_fields}
    return Settings(**known, _env_file=None)  # type: ignore[call-arg]


def _wait_stored(worker: WorkerProcess, uri: str, tenant: str, n: int) -> None:
    """Wait until the store holds ``n`` of the tenant's events."""
    deadline = time.monotonic() + 600
    while open_store(uri).count_events(tenant) < n:
        if worker.proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"the worker stopped short:\n{worker.log_tail()}")
        time.sleep(0.2)
