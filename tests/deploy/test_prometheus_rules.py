"""deploy/prometheus checked by promtool (Debian ``prometheus``, installed by ``make test``).

The config and rules must load, and every alert has a promtool unit test in which
it fires and one in which it stays silent, on series shaped as the worker exports
them (labels and histogram buckets from ``streams.worker.metrics``).
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from streams.serve.metrics import ServeMetrics
from streams.worker.metrics import WorkerMetrics

pytestmark = pytest.mark.deploy

PROMETHEUS = Path(__file__).parents[2] / "deploy" / "prometheus"
RULES = PROMETHEUS / "beliefstream-rules.yml"
RULE_TESTS = PROMETHEUS / "beliefstream-rules.test.yml"


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    tool = shutil.which("promtool")
    assert tool is not None, "promtool is missing: `make test` installs Debian's prometheus"
    return subprocess.run([tool, *args], capture_output=True, text=True, timeout=120)


def _alerts() -> list[dict[str, Any]]:
    groups = yaml.safe_load(RULES.read_text())["groups"]
    return [rule for group in groups for rule in group["rules"] if "alert" in rule]


def test_config_and_rules_load() -> None:
    checked = promtool("check", "config", str(PROMETHEUS / "prometheus.yml"))
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "SUCCESS" in checked.stdout


def test_every_alert_fires_and_stays_silent_where_its_unit_tests_say() -> None:
    tested = promtool("test", "rules", str(RULE_TESTS))
    assert tested.returncode == 0, tested.stdout + tested.stderr


def test_every_alert_has_a_firing_and_a_silent_case() -> None:
    cases: dict[str, set[bool]] = {}
    for test in yaml.safe_load(RULE_TESTS.read_text())["tests"]:
        for case in test.get("alert_rule_test", []):
            cases.setdefault(case["alertname"], set()).add(bool(case["exp_alerts"]))
    for alert in _alerts():
        assert cases.get(alert["alert"]) == {True, False}, alert["alert"]


def test_the_rules_name_only_metrics_the_worker_and_the_read_service_export() -> None:
    registries = (WorkerMetrics().registry, ServeMetrics().registry)
    exported = {m.name for registry in registries for m in registry.collect()}
    named = set(re.findall(r"beliefstream_[a-z_]+", RULES.read_text()))
    # A histogram's series end in _bucket, a counter's in _total; collect() names neither.
    missing = {n for n in named if re.sub(r"_(bucket|total)$", "", n) not in exported}
    assert named and not missing, missing
