"""How fast the ingest worker drains a topic, next to what its tools could do.

One broker, one pre-filled topic, and each contender alone in its own process
with a fresh consumer group reading from the earliest offset: raw aiokafka
(the ceiling), a default and a tuned no-op Faust agent (the framework's own
cost), the real worker (validation + LanceDB), and Quix Streams keeping a
per-user count in state (a peer). Completion is decided by counting messages,
never by end offsets: this broker answers ListOffsets(latest) one batch short.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import platform
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from rich.console import Console

from memory_store.events import Interaction
from streams.kafka.topics import ensure_topics
from streams.settings import Settings
from streams.tools.broker import Broker, free_port, start_broker

__all__ = ["make_interactions", "run_ingest_bench"]

_YEAR_S = 365 * 86400
_MARK = '{"contender"'
_ITEM_WORDS = ("jacket", "novel", "lamp", "album", "series", "sneaker", "kettle", "atlas")


def make_interactions(
    events: int, run_id: str, event_bytes: int = 1024, seed: int = 7
) -> list[tuple[bytes, bytes]]:
    """``events`` valid, unique (key, value) pairs of about ``event_bytes`` (at least ~200),
    ~``events/20`` users; the padding is review-like ``text``."""
    rng = random.Random(seed)
    users = max(1, events // 20)
    now = time.time()
    out: list[tuple[bytes, bytes]] = []
    for i in range(events):
        user = f"user-{rng.randrange(users):06d}"
        rate = rng.random() < 0.3
        value = {
            "event_id": f"{run_id}-{i:09d}",
            "tenant": "bench",
            "user_id": user,
            "item_id": f"{rng.choice(_ITEM_WORDS)}-{rng.randrange(20_000):05d}",
            "type": "rate" if rate else "view",
            "value": float(rng.randint(1, 5)) if rate else round(rng.uniform(1, 600), 1),
            "ts": round(now - rng.uniform(0, _YEAR_S), 3),
            "context": {"device": rng.choice(("ios", "android", "web")), "page": "home"},
        }
        raw = json.dumps(value, separators=(",", ":")).encode()
        pad = event_bytes - len(raw) - len(',"text":""')
        if pad > 0:
            words = " ".join(rng.choice(_ITEM_WORDS) for _ in range(pad // 5 + 1))
            value["text"] = words[:pad]
            raw = json.dumps(value, separators=(",", ":")).encode()
        Interaction.model_validate_json(raw)  # fail here, not as a dead letter in the worker
        out.append((user.encode(), raw))
    return out


async def _produce(bootstrap: str, topic: str, messages: list[tuple[bytes, bytes]]) -> None:
    from aiokafka import AIOKafkaProducer

    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=5, max_batch_size=256 * 1024)
    await producer.start()
    try:
        pending = []
        for key, value in messages:
            pending.append(await producer.send(topic, value=value, key=key))
            if len(pending) >= 5000:
                await asyncio.gather(*pending)
                pending.clear()
        await asyncio.gather(*pending)
    finally:
        await producer.stop()


class _Bench:
    """The broker, the topic and every process started for one run, and their cleanup."""

    def __init__(
        self, broker: Broker, settings: Settings, events: int, workdir: Path, round_clock: str
    ) -> None:
        self.broker = broker
        self.round_clock = round_clock
        self.settings = settings
        self.events = events
        self.workdir = workdir
        self.procs: list[subprocess.Popen[bytes]] = []
        self.timeout = 60.0 + events / 500

    def spawn(self, name: str, argv: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
        out = (self.workdir / f"{name}.out").open("wb")
        err = (self.workdir / f"{name}.err").open("wb")
        with out, err:
            proc = subprocess.Popen(
                [sys.executable, *argv], stdout=out, stderr=err, cwd=self.workdir, env=env
            )
        self.procs.append(proc)
        return proc

    def tail(self, name: str) -> str:
        path = self.workdir / f"{name}.err"
        return path.read_text(errors="replace")[-3000:] if path.exists() else ""

    def contender(self, name: str, label: str, *extra: str) -> dict[str, Any]:
        """Run one contender to completion and return its JSON line."""
        argv = ["-m", "streams.bench._contenders", name,
                "--bootstrap", self.broker.bootstrap_servers,
                "--topic", self.settings.topic_interactions,
                "--group", f"{label}-{uuid.uuid4().hex[:8]}",
                "--events", str(self.events),
                "--partitions", str(self.settings.partitions),
                "--timeout", str(self.timeout),
                "--state-dir", str(self.workdir / f"{label}-state"), *extra]  # fmt: skip
        proc = self.spawn(label, argv, _child_env())
        try:
            code = proc.wait(self.timeout + 30)
        except subprocess.TimeoutExpired:
            proc.kill()
            raise RuntimeError(f"{label} hung past {self.timeout + 30:.0f}s") from None
        lines = (self.workdir / f"{label}.out").read_text(errors="replace").splitlines()
        # Faust's spinner may leave terminal escapes in front of the line.
        results = [json.loads(line[line.index(_MARK) :]) for line in lines if _MARK in line]
        if code != 0 or not results:
            raise RuntimeError(f"{label} exited {code} without a result:\n{self.tail(label)}")
        result: dict[str, Any] = results[-1]
        if result["count"] < self.events:
            raise RuntimeError(f"{label} saw {result['count']} of {self.events}: {result}")
        if result["timed"] <= 0 or result["seconds"] <= 0:
            raise RuntimeError(f"{label}: its first fetch held every event; use more events")
        return result

    def pipeline(self, engine: str) -> dict[str, float]:
        """Run the real worker and time it from its /metrics; it must exit 0 on SIGTERM."""
        port = free_port()
        env = _child_env()
        env.update({
            "BELIEFSTREAM_BOOTSTRAP_SERVERS": self.broker.bootstrap_servers,
            "BELIEFSTREAM_SECURITY_PROTOCOL": "PLAINTEXT",
            "BELIEFSTREAM_TOPIC_INTERACTIONS": self.settings.topic_interactions,
            "BELIEFSTREAM_TOPIC_ITEMS": self.settings.topic_items,
            "BELIEFSTREAM_PARTITIONS": str(self.settings.partitions),
            "BELIEFSTREAM_APP_ID": f"bench-worker-{uuid.uuid4().hex[:8]}",
            "BELIEFSTREAM_LANCEDB_URI": str(self.workdir / f"lancedb-{engine}"),
            "BELIEFSTREAM_METRICS_PORT": str(port),
            "BELIEFSTREAM_TENANTS": "",
            "BELIEFSTREAM_LOG_LEVEL": "WARNING",
            "BELIEFSTREAM_INGEST_ENGINE": engine,
            "BELIEFSTREAM_ROUND_CLOCK": self.round_clock,
        })  # fmt: skip
        label = f"pipeline-{engine}"
        proc = self.spawn(label, ["-m", "streams.cli", "worker"], env)
        deadline = time.monotonic() + self.timeout
        started = first = 0.0
        metrics: dict[str, float] = {}
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"worker exited {proc.returncode}:\n{self.tail(label)}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"worker did not write {self.events} events in time: {metrics}")
            metrics = _scrape(port)
            consumed = metrics.get("beliefstream_events_consumed_total", 0.0)
            written = metrics.get("beliefstream_events_written_total", 0.0)
            if consumed > 0 and not started:
                started, first = time.time(), consumed
            if written >= self.events:
                break
            # Poll fast only to catch the start; the end comes from the worker's own gauge.
            time.sleep(0.5 if started else 0.02)
        ended = metrics["beliefstream_last_write_timestamp_seconds"]
        if written != self.events:
            raise RuntimeError(f"worker wrote {written:.0f} events, expected {self.events}")
        if ended <= started or first >= self.events:
            raise RuntimeError("the worker wrote every event before a poll saw it; use more events")
        proc.send_signal(signal.SIGTERM)
        try:
            code = proc.wait(30)
        except subprocess.TimeoutExpired:
            raise RuntimeError("worker did not stop within 30s of SIGTERM") from None
        if code != 0:
            raise RuntimeError(f"worker exited {code} on SIGTERM:\n{self.tail(label)}")
        return {"count": self.events, "timed": self.events - first, "seconds": ended - started}

    def stop_processes(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(10)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(5)


@contextlib.contextmanager
def _sigterm_as_interrupt() -> Iterator[None]:
    """SIGTERM would end Python without its finally blocks, leaving the broker and children."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous if previous is not None else signal.SIG_DFL)


def _child_env() -> dict[str, str]:
    """This environment minus BELIEFSTREAM_* settings, so every run measures the same config."""
    return {k: v for k, v in os.environ.items() if not k.startswith("BELIEFSTREAM_")}


def _scrape(port: int) -> dict[str, float]:
    """Unlabelled samples of a Prometheus text page; empty while the server is not up."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=1) as resp:
            text = resp.read().decode()
    except OSError:
        return {}
    samples: dict[str, float] = {}
    for line in text.splitlines():
        if line and not line.startswith("#") and "{" not in line:
            name, _, value = line.rpartition(" ")
            samples[name] = float(value)
    return samples


def _eps(result: dict[str, Any]) -> float:
    return round(float(result["timed"]) / float(result["seconds"]), 1)


def run_ingest_bench(
    events: int,
    console: Console,
    partitions: int = 4,
    event_bytes: int = 1024,
    round_clock: str = "event",
) -> dict[str, Any]:
    """Pre-fill one topic with ``events`` interactions and time each contender on it.

    ``round_clock``: the worker's planner rounds, on event time (the default: the
    events' times span a year, so rounds run inside the timed window) or on the wall
    clock (every 30 s: none in a run this short, so ingest alone is timed).

    Events per second = messages processed after a contender's first delivery / the time
    from that delivery to its ``events``-th message; use ≥ 20,000 events so the first
    fetch (up to 5,000 messages) is a small part of the run.
    """
    if events < 2:
        raise ValueError("events must be at least 2")
    run_id = f"bench-{uuid.uuid4().hex[:8]}"
    with _sigterm_as_interrupt(), tempfile.TemporaryDirectory(prefix="beliefstream-bench-") as tmp:
        broker = start_broker()
        bench: _Bench | None = None
        try:
            settings = Settings(
                bootstrap_servers=broker.bootstrap_servers,
                security_protocol="PLAINTEXT",
                app_id=run_id,
                topic_interactions=f"{run_id}-interactions",
                topic_items=f"{run_id}-items",
                partitions=partitions,
            )
            bench = _Bench(broker, settings, events, Path(tmp), round_clock)
            return _run(bench, run_id, console, event_bytes)
        finally:
            if bench is not None:
                bench.stop_processes()
            broker.stop()


def _run(bench: _Bench, run_id: str, console: Console, event_bytes: int) -> dict[str, Any]:
    settings, events = bench.settings, bench.events
    console.print(f"[bold]ingest bench[/]: {events:,} events, {settings.partitions} partitions, "
                  f"broker {bench.broker.bootstrap_servers}")  # fmt: skip
    ensure_topics(settings)
    began = time.perf_counter()
    asyncio.run(_produce(bench.broker.bootstrap_servers, settings.topic_interactions,
                         make_interactions(events, run_id, event_bytes)))  # fmt: skip
    console.print(f"  pre-filled {settings.topic_interactions} in "
                  f"{time.perf_counter() - began:.1f}s")  # fmt: skip
    steps: list[tuple[str, str, tuple[str, ...]]] = [
        ("aiokafka_eps", "aiokafka", ()),
        ("aiokafka_getmany_eps", "aiokafka_getmany", ()),
        ("faust_noop_eps", "faust_default", ()),
        ("faust_noop_tuned_eps", "faust_tuned", ()),
        ("pipeline_eps", "pipeline", ("batch",)),
        ("pipeline_faust_agent_eps", "pipeline", ("faust-agent",)),
        ("quix_state_eps", "quix_state", ()),
        ("faust_profile", "faust_tuned", ("--profile",)),
    ]
    out: dict[str, Any] = {
        "events": events,
        "event_bytes": event_bytes,
        "partitions": settings.partitions,
        "round_clock": bench.round_clock,
    }
    profile: dict[str, Any] = {}
    for i, (key, name, extra) in enumerate(steps, 1):
        label = f"{name}-profiled" if key == "faust_profile" else "-".join((name, *extra))
        console.print(f"  [{i}/{len(steps)}] {label} ...", end=" ")
        began = time.perf_counter()
        result: dict[str, Any] = (
            bench.pipeline(*extra) if name == "pipeline" else bench.contender(name, label, *extra)
        )
        if key == "faust_profile":
            profile = result["profile"]
            per_event = profile["total_tottime_us_per_event"]
            console.print(f"{_eps(result):,.0f} ev/s under cProfile, {per_event:.0f} µs/event")
            shares = ", ".join(f"{k} {v:.0f}" for k, v in profile["package_us_per_event"].items())
            console.print(f"      µs/event by package: {shares}")
        else:
            out[key] = _eps(result)
            console.print(f"{out[key]:,.0f} ev/s ({result['seconds']:.2f}s timed, "
                          f"{time.perf_counter() - began:.1f}s with start-up)")  # fmt: skip
    pipeline = out["pipeline_eps"]
    for ratio, peer in (("vs_faust", "faust_noop_eps"), ("vs_aiokafka", "aiokafka_eps"),
                        ("vs_aiokafka_getmany", "aiokafka_getmany_eps"),
                        ("vs_quix", "quix_state_eps")):  # fmt: skip
        # Three significant figures: a ratio of 0.0285 rounded to 0.028 is 2% off.
        out[f"ratio_{ratio}"] = float(f"{pipeline / out[peer]:.3g}")
    out["machine"] = {"cpu_count": os.cpu_count(), "python_version": platform.python_version(),
                      "platform": platform.platform()}  # fmt: skip
    out["faust_profile"] = profile["top"]
    return out
