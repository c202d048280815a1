"""The command line as a user runs it: separate processes, settings from the environment."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from streams.tools.broker import free_port

pytestmark = pytest.mark.e2e

CLI = str(Path(sys.executable).with_name("beliefstream"))


def run(args: list[str], env: dict[str, str] | None = None, timeout: float = 300) -> str:
    done = subprocess.run(
        [CLI, *args], env=env, capture_output=True, text=True, timeout=timeout, check=False
    )
    assert done.returncode == 0, f"{args} exited {done.returncode}:\n{done.stdout}\n{done.stderr}"
    return done.stdout


def listening(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


def test_demo_on_a_slice_exits_zero_and_leaves_no_process(tmp_path: Path) -> None:
    out = run(["demo", "--limit", "3000", "--data-dir", str(tmp_path)])
    assert "all 3000 events in the event tier" in out
    assert re.search(r"[\d,]+ events/s", out)
    port = int(re.search(r"broker on 127\.0\.0\.1:(\d+)", out).group(1))  # type: ignore[union-attr]
    assert not listening(port)
    user = re.search(r"movielens/(\S+): (\d+) events", out)
    assert user is not None and int(user.group(2)) > 0

    env = {**os.environ, "BELIEFSTREAM_LANCEDB_URI": str(tmp_path / "lancedb")}
    shown = json.loads(
        run(["memory", "show", "--tenant", "movielens", user.group(1), "--json"], env)
    )
    assert shown["event_count"] == int(user.group(2))
    other = json.loads(
        run(["memory", "show", "--tenant", "someone-else", user.group(1), "--json"], env)
    )
    assert other["event_count"] == 0


def test_broker_replay_worker_and_memory_show_from_a_users_own_file(tmp_path: Path) -> None:
    events = tmp_path / "events.jsonl"
    rows = [
        {"event_id": f"e{i}", "tenant": "shop", "user_id": f"u{i % 4}", "item_id": f"sku{i}",
         "type": "purchase" if i % 5 == 0 else "view", "ts": 1_700_000_000 + i}
        for i in range(200)
    ]  # fmt: skip
    events.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    port = free_port()
    env = {
        **os.environ,
        "BELIEFSTREAM_BOOTSTRAP_SERVERS": f"127.0.0.1:{port}",
        "BELIEFSTREAM_LANCEDB_URI": str(tmp_path / "db"),
        "BELIEFSTREAM_METRICS_PORT": str(free_port()),
        "BELIEFSTREAM_APP_ID": "e2e-own-file",
    }
    broker = subprocess.Popen([CLI, "broker", "--port", str(port)], env=env)
    worker = None
    try:
        deadline = time.monotonic() + 20
        while not listening(port):
            assert time.monotonic() < deadline and broker.poll() is None
            time.sleep(0.05)
        run(["replay", str(events)], env)
        worker = subprocess.Popen([CLI, "worker"], env=env)
        count = 0
        deadline = time.monotonic() + 90
        while count < 50 and time.monotonic() < deadline:
            assert worker.poll() is None, "worker died"
            out = run(["memory", "show", "--tenant", "shop", "u1", "--json"], env)
            count = json.loads(out)["event_count"]
            time.sleep(0.5)
        assert count == 50
        table = run(["memory", "show", "--tenant", "shop", "u1", "--limit", "3"], env)
        assert "shop/u1: 50 events" in table and "e197" in table
        worker.send_signal(signal.SIGTERM)
        assert worker.wait(30) == 0
        worker = None
    finally:
        if worker is not None:
            worker.kill()
        broker.send_signal(signal.SIGTERM)
        assert broker.wait(10) == 0
