"""deploy/ checked by the validators the field uses: hadolint for the Dockerfile,
kubernetes-validate (offline schemas, strict) for the manifests, the Compose spec
(check-jsonschema's vendored copy) for compose, promtool for compose's Prometheus and
every dashboard query; and every BELIEFSTREAM_* variable they set is a real setting."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from streams.serve.metrics import ServeMetrics
from streams.settings import Settings
from streams.worker.metrics import WorkerMetrics

pytestmark = pytest.mark.deploy

DEPLOY = Path(__file__).parents[2] / "deploy"
BIN = Path(sys.executable).parent
MANIFESTS = sorted((DEPLOY / "k8s").glob("*.yaml"))
COMPOSE = DEPLOY / "compose" / "compose.yaml"
DASHBOARD = DEPLOY / "grafana" / "dashboards" / "beliefstream.json"


def run(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(a) for a in args], capture_output=True, text=True, timeout=120)


def test_the_dockerfile_passes_hadolint() -> None:
    linted = run(BIN / "hadolint", DEPLOY / "docker" / "Dockerfile")
    assert linted.returncode == 0, linted.stdout + linted.stderr


def test_the_manifests_are_valid_kubernetes_objects(tmp_path: Path) -> None:
    assert {p.name for p in MANIFESTS} >= {"config.yaml", "secret.yaml", "worker.yaml",
                                           "serve.yaml"}  # fmt: skip
    checked = run(BIN / "kubernetes-validate", "--strict", "--quiet", *MANIFESTS)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    # The validator is not vacuous: a misspelt field in the worker's probe is refused.
    bad = tmp_path / "worker.yaml"
    text = (DEPLOY / "k8s" / "worker.yaml").read_text()
    bad.write_text(text.replace("periodSeconds: 10", "periodSecond: 10"))
    assert run(BIN / "kubernetes-validate", "--strict", "--quiet", bad).returncode != 0


def _workloads() -> dict[str, dict[str, Any]]:
    docs = [d for p in MANIFESTS for d in yaml.safe_load_all(p.read_text()) if d]
    return {d["metadata"]["name"]: d for d in docs if d["kind"] == "Deployment"}


def test_the_worker_is_probed_on_its_health_paths_and_scraped() -> None:
    worker = _workloads()["beliefstream-worker"]["spec"]["template"]
    container = worker["spec"]["containers"][0]
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert worker["metadata"]["annotations"]["prometheus.io/scrape"] == "true"
    refs = {next(iter(r.values()))["name"] for r in container["envFrom"]}
    assert refs == {"beliefstream-config", "beliefstream-secrets"}


def test_compose_follows_the_compose_spec(tmp_path: Path) -> None:
    checked = run(BIN / "check-jsonschema", "--builtin-schema", "vendor.compose-spec", COMPOSE)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    services = yaml.safe_load(COMPOSE.read_text())["services"]
    assert {"kafka", "minio", "worker", "serve", "prometheus", "grafana"} <= set(services)
    bad = tmp_path / "compose.yaml"
    bad.write_text(COMPOSE.read_text().replace("stop_grace_period:", "stop_grace_periods:"))
    assert run(BIN / "check-jsonschema", "--builtin-schema", "vendor.compose-spec",
               bad).returncode != 0  # fmt: skip


def test_compose_prometheus_loads_with_the_rules(tmp_path: Path) -> None:
    promtool = shutil.which("promtool")
    assert promtool, "promtool is missing: `make test` installs Debian's prometheus"
    shutil.copy(DEPLOY / "compose" / "prometheus.yml", tmp_path / "prometheus.yml")
    shutil.copy(DEPLOY / "prometheus" / "beliefstream-rules.yml", tmp_path)
    checked = run(promtool, "check", "config", tmp_path / "prometheus.yml")
    assert checked.returncode == 0, checked.stdout + checked.stderr


def _queries() -> list[tuple[str, str]]:
    panels = json.loads(DASHBOARD.read_text())["panels"]
    return [(p["title"], t["expr"]) for p in panels for t in p.get("targets", [])]


def test_every_dashboard_query_is_valid_promql_over_exported_metrics(tmp_path: Path) -> None:
    promtool = shutil.which("promtool")
    assert promtool, "promtool is missing: `make test` installs Debian's prometheus"
    queries = _queries()
    rules = {"groups": [{"name": "dashboard", "rules": [
        {"record": f"dashboard:query_{n}", "expr": expr} for n, (_, expr) in enumerate(queries)
    ]}]}  # fmt: skip
    (tmp_path / "queries.yml").write_text(yaml.safe_dump(rules))
    checked = run(promtool, "check", "rules", tmp_path / "queries.yml")
    assert checked.returncode == 0, checked.stdout + checked.stderr
    registries = (WorkerMetrics().registry, ServeMetrics().registry)
    exported = {m.name for r in registries for m in r.collect()}
    rules_text = (DEPLOY / "prometheus" / "beliefstream-rules.yml").read_text()
    recorded = set(re.findall(r"record: (\S+)", rules_text))
    for title, expr in queries:
        for name in re.findall(r"beliefstream[_:][a-z0-9_:]+", expr):
            base = re.sub(r"_(bucket|total|count|sum)$", "", name)
            assert base in exported or name in recorded, (title, name)


def test_the_dashboard_covers_every_part_of_the_pipeline() -> None:
    rows = [p["title"] for p in json.loads(DASHBOARD.read_text())["panels"] if p["type"] == "row"]
    assert rows == ["Ingest", "Lag", "Memory operations", "Planner", "Item codebook", "Reads"]


def _variables() -> dict[str, str]:
    """Every BELIEFSTREAM_* variable deploy/ sets, with its value."""
    found: dict[str, str] = {}
    for path in [*MANIFESTS, COMPOSE]:
        for doc in yaml.safe_load_all(path.read_text()):
            _collect(doc, found)
    return found


def _collect(node: Any, found: dict[str, str]) -> None:
    if isinstance(node, dict):
        for key, value in node.items():
            if isinstance(key, str) and key.startswith("BELIEFSTREAM_"):
                found[key] = str(value)
            elif key == "name" and str(value).startswith("BELIEFSTREAM_") and "value" in node:
                found[str(value)] = str(node["value"])
            _collect(value, found)
    elif isinstance(node, list):
        for item in node:
            _collect(item, found)


def test_every_variable_deploy_sets_is_a_setting_and_they_load(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    found = _variables()
    assert "BELIEFSTREAM_STORAGE_SECRET_ACCESS_KEY" in found
    for name, value in found.items():
        monkeypatch.setenv(name, value)
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    fields = type(settings).model_fields
    for name in found:
        key = name.removeprefix("BELIEFSTREAM_").lower()
        head, _, rest = key.partition("_")
        nested = fields.get(head)
        model = getattr(nested, "annotation", None)
        known = key in fields or (
            model is not None and hasattr(model, "model_fields") and rest in model.model_fields
        )
        assert known, name
    assert settings.lancedb_uri.startswith("s3://") and settings.storage.allow_http
    assert settings.job_store_url.startswith("sqlite:///")  # a worker on s3:// must be told
