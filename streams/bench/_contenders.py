"""The contenders of the ingest benchmark, each run alone in its own process.

``python -m streams.bench._contenders NAME --bootstrap ... --topic ... --events N``
consumes the pre-filled topic with a fresh group and writes one JSON line to
fd 1 (Faust redirects ``sys.stdout`` into its logger). The clock runs from
the first delivery to the ``events``-th message, so imports and the group
join are left out; ``timed`` counts only the messages processed after the
clock started (the first delivery, a whole fetch for batch consumers, is not).
A process that has not seen every message by ``--timeout`` exits non-zero.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import json
import os
import pstats
import signal
import sys
import sysconfig
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from streams.kafka.options import HEARTBEAT_INTERVAL_MS, SESSION_TIMEOUT_MS

__all__ = ["CONTENDERS", "main"]

EXIT_TIMEOUT = 3
# Where profiled files live, longest first, so labels read "faust/streams.py:1171(...)".
_ROOTS = sorted(
    {
        sysconfig.get_paths()["purelib"],
        sysconfig.get_paths()["stdlib"],
        str(Path(__file__).parents[2]),
    },
    key=len,
    reverse=True,
)
# Every contender waits out a crash as long as the worker does (streams.kafka.options).
_GROUP_TIMING = {
    "session_timeout_ms": SESSION_TIMEOUT_MS,
    "heartbeat_interval_ms": HEARTBEAT_INTERVAL_MS,
}


class _Clock:
    """Counts messages and stamps the first delivery and the last message."""

    def __init__(self, events: int) -> None:
        self.events = events
        self.count = 0
        self.first_delivery = 0
        self.started = 0.0
        self.seconds = 0.0

    def add(self, n: int) -> bool:
        """Record ``n`` processed messages; True once all ``events`` were seen."""
        if self.count == 0:
            self.started = time.perf_counter()
            self.first_delivery = n
        self.count += n
        if self.count >= self.events:
            self.seconds = time.perf_counter() - self.started
            return True
        return False

    def result(self, name: str, **extra: Any) -> dict[str, Any]:
        timed = self.count - self.first_delivery
        return {"contender": name, "count": self.count, "timed": timed,
                "seconds": self.seconds, **extra}  # fmt: skip


def _emit(result: dict[str, Any]) -> None:
    os.write(1, (json.dumps(result) + "\n").encode())


def _watchdog(seconds: float, clock: _Clock) -> threading.Timer:
    """Fail loudly (exit non-zero) if the topic was not read in time."""

    def expire() -> None:
        msg = f"timeout after {seconds:.0f}s: saw {clock.count} of {clock.events} messages\n"
        os.write(2, msg.encode())
        os._exit(EXIT_TIMEOUT)

    timer = threading.Timer(seconds, expire)
    timer.daemon = True
    timer.start()
    return timer


async def _aiokafka(args: argparse.Namespace, clock: _Clock) -> None:
    from aiokafka import AIOKafkaConsumer

    consumer = AIOKafkaConsumer(
        args.topic,
        bootstrap_servers=args.bootstrap,
        group_id=args.group,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        **_GROUP_TIMING,
    )
    await consumer.start()
    try:
        if args.name == "aiokafka":
            async for _message in consumer:
                if clock.add(1):
                    break
        else:
            done = False
            while not done:
                batches = await consumer.getmany(timeout_ms=500, max_records=5000)
                n = 0
                for messages in batches.values():
                    for _message in messages:
                        n += 1
                done = n > 0 and clock.add(n)
    finally:
        await consumer.stop()
    _emit(clock.result(args.name))


def run_aiokafka(args: argparse.Namespace, clock: _Clock) -> None:
    """Raw aiokafka on uvloop: the usual per-message loop, or ``getmany`` batches."""
    import uvloop

    uvloop.run(_aiokafka(args, clock))


def _stop_self() -> None:
    """Ask the Faust worker to stop as on SIGTERM (it then exits 0 on its own)."""
    os.kill(os.getpid(), signal.SIGTERM)


def run_faust_default(args: argparse.Namespace, clock: _Clock) -> None:
    """A no-op agent as a user writes it: Faust defaults, JSON values, one event a step."""
    import faust

    app = faust.App(
        args.group,
        broker=f"kafka://{args.bootstrap}",
        broker_session_timeout=SESSION_TIMEOUT_MS / 1000,
        broker_heartbeat_interval=HEARTBEAT_INTERVAL_MS / 1000,
        consumer_auto_offset_reset="earliest",
        web_enabled=False,
    )
    topic = app.topic(args.topic)

    async def noop(stream: Any) -> None:
        async for _value in stream:
            if clock.add(1):
                _emit(clock.result("faust_default"))
                _stop_self()

    app.agent(topic, name="noop")(noop)
    faust.Worker(app, loglevel="WARNING", quiet=True).execute_from_commandline()


def run_faust_tuned(args: argparse.Namespace, clock: _Clock) -> None:
    """A no-op over our worker's tuned app (raw bytes, ``take_events``, uvloop)."""
    import faust
    import uvloop

    from streams.settings import Settings
    from streams.worker.app import faust_app

    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    asyncio.set_event_loop(asyncio.new_event_loop())
    settings = Settings(
        bootstrap_servers=args.bootstrap, partitions=args.partitions, app_id=args.group
    )
    app = faust_app(settings)
    topic = app.topic(args.topic, value_serializer="raw", key_serializer="raw")
    profiler = cProfile.Profile() if args.profile else None

    async def noop(stream: Any) -> None:
        async for events in stream.take_events(1000, within=0.5):
            first = clock.count == 0
            if clock.add(len(events)):
                extra: dict[str, Any] = {}
                if profiler is not None:
                    profiler.disable()
                    extra["profile"] = _top_functions(profiler, clock.count - clock.first_delivery)
                _emit(clock.result("faust_tuned", **extra))
                _stop_self()
            elif first and profiler is not None:
                profiler.enable()

    app.agent(topic, name="noop")(noop)
    faust.Worker(app, loglevel="WARNING", quiet=True).execute_from_commandline()


def _top_functions(profiler: cProfile.Profile, events: int, top: int = 15) -> dict[str, Any]:
    """The functions with the most own time, per profiled event."""
    raw: dict[tuple[str, int, str], tuple[int, int, float, float, Any]]
    raw = pstats.Stats(profiler).stats  # type: ignore[attr-defined]
    per = max(events, 1)
    rows = sorted(raw.items(), key=lambda kv: kv[1][2], reverse=True)[:top]
    total = sum(stat[2] for stat in raw.values())
    packages: dict[str, float] = {}
    for func, stat in raw.items():
        package = _package(func)
        packages[package] = packages.get(package, 0.0) + stat[2]
    return {
        "events": events,
        "total_tottime_us_per_event": round(total / per * 1e6, 2),
        "package_us_per_event": {
            name: round(seconds / per * 1e6, 1)
            for name, seconds in sorted(packages.items(), key=lambda kv: -kv[1])[:8]
        },
        "top": [
            {
                "function": _label(func),
                "tottime_us_per_event": round(stat[2] / per * 1e6, 2),
                "calls_per_event": round(stat[1] / per, 3),
            }
            for func, stat in rows
        ],
    }


def _label(func: tuple[str, int, str]) -> str:
    filename, line, name = func
    if filename == "~":
        return name
    for root in _ROOTS:
        if filename.startswith(root):
            filename = filename[len(root) :].lstrip("/")
            break
    return f"{filename}:{line}({name})"


def _package(func: tuple[str, int, str]) -> str:
    if func[0] == "~":
        return "builtins"
    head = _label(func).split("/", 1)[0].split(":", 1)[0]
    return "stdlib (other)" if head.endswith(".py") or head.startswith("<") else head


def run_quix(args: argparse.Namespace, clock: _Clock) -> None:
    """Quix Streams with a per-user count in its RocksDB state store, keyed by user."""
    from quixstreams import Application, State

    app = Application(
        broker_address=args.bootstrap,
        consumer_group=args.group,
        auto_offset_reset="earliest",
        state_dir=args.state_dir,
        loglevel="WARNING",
        consumer_extra_config={
            "session.timeout.ms": SESSION_TIMEOUT_MS,
            "heartbeat.interval.ms": HEARTBEAT_INTERVAL_MS,
        },
    )
    sdf = app.dataframe(app.topic(args.topic, value_deserializer="json"))

    def count_user(value: Any, state: State[str, int]) -> None:
        state.set("count", state.get("count", 0) + 1)
        if clock.add(1):
            app.stop()

    sdf.update(count_user, stateful=True)
    app.run()
    _emit(clock.result("quix_state"))


CONTENDERS: dict[str, Callable[[argparse.Namespace, _Clock], None]] = {
    "aiokafka": run_aiokafka,
    "aiokafka_getmany": run_aiokafka,
    "faust_default": run_faust_default,
    "faust_tuned": run_faust_tuned,
    "quix_state": run_quix,
}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m streams.bench._contenders")
    parser.add_argument("name", choices=sorted(CONTENDERS))
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("--topic", required=True)
    parser.add_argument("--group", required=True)
    parser.add_argument("--events", type=int, required=True)
    parser.add_argument("--partitions", type=int, default=4)
    parser.add_argument("--timeout", type=float, default=120.0)
    parser.add_argument("--state-dir", default="state")
    parser.add_argument("--profile", action="store_true")
    args = parser.parse_args(argv)
    clock = _Clock(args.events)
    watchdog = _watchdog(args.timeout, clock)
    try:
        CONTENDERS[args.name](args, clock)
    except SystemExit as exc:  # Faust's worker always ends this way
        if exc.code not in (0, None):
            raise
    finally:
        watchdog.cancel()
    if clock.count < args.events:
        sys.exit(f"{args.name} stopped after {clock.count} of {args.events} messages")


if __name__ == "__main__":
    main()
