"""A real Prometheus (Debian's, as deploy/ runs it) scrapes a running worker on loopback,
loads the project's rules, and answers a query for the project's metrics."""

from __future__ import annotations

import json
import shutil
import subprocess
import time
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import pytest
import yaml

from streams.settings import Settings
from streams.tools.broker import free_port
from tests.integration.conftest import encode, interaction, produce

pytestmark = pytest.mark.integration

RULES = Path(__file__).parents[2] / "deploy" / "prometheus" / "beliefstream-rules.yml"


def _query(port: int, expr: str) -> list[dict[str, Any]]:
    url = f"http://127.0.0.1:{port}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
    with urllib.request.urlopen(url, timeout=5) as response:
        body = json.load(response)
    assert body["status"] == "success", body
    return list(body["data"]["result"])


def test_prometheus_scrapes_the_worker_and_loads_the_rules(
    settings: Settings, start_worker: Any, tmp_path: Path
) -> None:
    binary = shutil.which("prometheus")
    assert binary, "prometheus is missing: `make test` installs Debian's prometheus"
    produce(settings, encode([interaction(i) for i in range(300)]))
    worker = start_worker(settings)
    worker.wait_for(lambda: worker.metric("beliefstream_events_written_total") >= 300)

    shutil.copy(RULES, tmp_path / RULES.name)
    config = {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "rule_files": [RULES.name],
        "scrape_configs": [{"job_name": "beliefstream-worker", "static_configs": [
            {"targets": [f"127.0.0.1:{worker.settings.metrics_port}"]}]}],
    }  # fmt: skip
    (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(config))
    port = free_port()
    server = subprocess.Popen(
        [binary, f"--config.file={tmp_path / 'prometheus.yml'}",
         f"--storage.tsdb.path={tmp_path / 'tsdb'}", f"--web.listen-address=127.0.0.1:{port}"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                found = _query(port, "beliefstream_events_written_total")
                if found and float(found[0]["value"][1]) >= 300:
                    break
            except OSError:
                pass  # not listening yet
            assert time.monotonic() < deadline, "Prometheus never scraped the worker"
            time.sleep(0.5)
        assert found[0]["metric"]["job"] == "beliefstream-worker"
        assert _query(port, "up{job='beliefstream-worker'}")[0]["value"][1] == "1"
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/v1/rules", timeout=5) as r:
            groups = json.load(r)["data"]["groups"]
        alerts = {rule["name"] for g in groups for rule in g["rules"] if rule["type"] == "alerting"}
        assert {"BeliefstreamNoWrites", "BeliefstreamWorkerDown"} <= alerts
    finally:
        server.terminate()
        server.wait(10)
    assert worker.stop() == 0
