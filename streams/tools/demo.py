"""The main job, end to end on real data: broker, worker, MovieLens replay, memory.

Everything runs for real: a Kafka-protocol broker process, the worker process
as an operator would start it, and the replay through the broker. The demo
only reads the result (LanceDB), prints it, and cleans up every process.
"""

from __future__ import annotations

import collections
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from memory_store.lance.store import open_store
from streams.settings import Settings
from streams.tools.broker import free_port, start_broker
from streams.tools.datasets import load_dataset
from streams.tools.processes import WorkerProcess
from streams.tools.replay import replay
from streams.tools.show import print_memory

__all__ = ["run_demo"]

TENANT = "movielens"


def run_demo(
    console: Console,
    limit: int | None = None,
    data_dir: Path | None = None,
    dataset: str = "ml-100k",
    timeout_s: float = 600.0,
) -> int:
    """Run the demo; returns the process exit code (0 when every event was stored)."""
    data = load_dataset(dataset, tenant=TENANT, limit=limit)
    expected = len({e["event_id"] for e in data.interactions})
    console.print(f"[bold]{dataset}[/]: {expected} interactions, {len(data.items)} items")
    with tempfile.TemporaryDirectory(prefix="beliefstream-demo-") as tmp:
        root = data_dir or Path(tmp)
        root.mkdir(parents=True, exist_ok=True)
        broker = start_broker()
        worker: WorkerProcess | None = None
        try:
            settings = Settings(
                bootstrap_servers=broker.bootstrap_servers,
                app_id="beliefstream-demo",
                lancedb_uri=str(root / "lancedb"),
                metrics_port=free_port(),
                round_event_s=7 * 86_400.0,  # a week of event time per planner round
                round_idle_s=2.0,  # the end of the replay: close the last round soon
                _env_file=None,  # type: ignore[call-arg]
            )
            console.print(
                f"broker on {broker.bootstrap_servers}; LanceDB at {settings.lancedb_uri}"
            )
            worker = WorkerProcess(settings, root / "worker.log")
            _wait_until_assigned(console, worker, timeout_s=60)
            started = time.monotonic()
            replay(settings, data, progress=True)
            stored = _wait_until_stored(console, settings, worker, expected, timeout_s)
            elapsed = time.monotonic() - started
            if stored < expected:
                console.print(f"[red]only {stored}/{expected} events stored[/]")
                console.print(worker.log_tail())
                return 1
            console.print(
                f"[green]all {expected} events in the event tier[/] in {elapsed:.1f}s end to end: "
                f"[bold]{expected / elapsed:,.0f} events/s[/] "
                "(replay → Kafka → worker → LanceDB, first event produced to last stored)"
            )
            users = len({(e["tenant"], e["user_id"]) for e in data.interactions})
            _wait_until_maintained(console, worker, users, timeout_s)
            user = _show_busiest_user(console, settings, data.interactions)
            if data_dir is not None:
                console.print(
                    f"again: BELIEFSTREAM_LANCEDB_URI={settings.lancedb_uri} "
                    f"beliefstream memory show --tenant {TENANT} {user}"
                )
            code = worker.stop()
            worker = None
            if code != 0:
                console.print(f"[red]worker exited with {code}[/]")
                return 1
            return 0
        finally:
            if worker is not None:
                worker.stop()
            broker.stop()


def _wait_until_assigned(console: Console, worker: WorkerProcess, timeout_s: float) -> None:
    """Block until the worker owns partitions, so the timing below excludes its start-up."""
    with console.status("starting the worker and joining the consumer group"):
        deadline = time.monotonic() + timeout_s
        while worker.metric("beliefstream_assigned_partitions") < 1:
            if worker.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the worker did not start:\n{worker.log_tail()}")
            time.sleep(0.1)


def _wait_until_stored(
    console: Console, settings: Settings, worker: WorkerProcess, expected: int, timeout_s: float
) -> int:
    store = open_store(settings.lancedb_uri)
    columns = (TextColumn("stored"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    deadline = time.monotonic() + timeout_s
    stored = 0
    with Progress(*columns, console=console) as progress:
        task = progress.add_task("stored", total=expected)
        while time.monotonic() < deadline:
            stored = store.count_events(TENANT)
            progress.update(task, completed=stored)
            if stored >= expected or worker.proc.poll() is not None:
                break
            time.sleep(0.25)
    return stored


def _wait_until_maintained(
    console: Console, worker: WorkerProcess, users: int, timeout_s: float
) -> None:
    """Wait for the fixed-interval maintenance to have visited every user once."""
    started = time.monotonic()
    with console.status("consolidation, forgetting and resynthesis for every user"):
        while time.monotonic() - started < timeout_s and worker.proc.poll() is None:
            if worker.metric("beliefstream_maintained_users_total") >= users:
                break
            time.sleep(0.25)
    console.print(
        f"beliefs of {users} users maintained {time.monotonic() - started:.1f}s after the last "
        f"event was stored; {worker.metric('beliefstream_change_notices_total'):,.0f} "
        "change notices published for readers"
    )


def _show_busiest_user(
    console: Console, settings: Settings, interactions: Sequence[Mapping[str, Any]]
) -> str:
    counts = collections.Counter(str(e["user_id"]) for e in interactions)
    user, _ = counts.most_common(1)[0]
    memory = open_store(settings.lancedb_uri).read_user(TENANT, user, limit=10)
    print_memory(console, memory)
    return user
