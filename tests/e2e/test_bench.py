"""The ingest benchmark command runs end to end and writes complete, sane JSON.

It checks that the numbers exist and hang together, never how large they are:
speed targets live in the benchmark's output, not in the test suite.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.e2e.test_cli import run

pytestmark = pytest.mark.e2e

RATES = (
    "aiokafka_eps",
    "aiokafka_getmany_eps",
    "faust_noop_eps",
    "faust_noop_tuned_eps",
    "pipeline_eps",
    "pipeline_faust_agent_eps",
    "quix_state_eps",
)


def test_bench_ingest_writes_every_figure(tmp_path: Path) -> None:
    out = tmp_path / "ingest.json"
    run(["bench", "ingest", "--events", "20000", "--json", str(out)], timeout=900)
    result = json.loads(out.read_text())
    assert result["events"] == 20000 and result["event_bytes"] == 1024
    assert result["round_clock"] == "event"  # the worker as deployed: rounds on event time
    for key in RATES:
        assert result[key] > 0, key
    assert result["ratio_vs_faust"] == pytest.approx(
        result["pipeline_eps"] / result["faust_noop_eps"], rel=0.01
    )
    assert result["ratio_vs_aiokafka"] == pytest.approx(
        result["pipeline_eps"] / result["aiokafka_eps"], rel=0.01
    )
    assert result["ratio_vs_quix"] == pytest.approx(
        result["pipeline_eps"] / result["quix_state_eps"], rel=0.01
    )
    profile = result["faust_profile"]
    assert len(profile) >= 5
    assert all(row["tottime_us_per_event"] > 0 for row in profile)


def test_bench_read_writes_every_figure(tmp_path: Path) -> None:
    out = tmp_path / "read.json"
    args = ["--users", "400", "--hot-users", "100", "--reads", "500", "--http-seconds", "2",
            "--probes", "3", "--json", str(out)]  # fmt: skip
    run(["bench", "read", *args], timeout=900)
    result = json.loads(out.read_text())
    assert (result["users"], result["chunks_per_user"]) == (400, 20)
    for prefix in ("py", "py_cold", "py_retrieve", "http"):
        assert 0 < result[f"{prefix}_p50_ms"] <= result[f"{prefix}_p99_ms"], prefix
    assert result["py_cache_misses"] == 100  # each hot user read cold once, then from cache
    assert result["py_cache_hits"] >= 500
    assert result["http_requests"] > 0 and result["http_errors"] == 0
    assert result["http_rps"] == pytest.approx(result["http_requests"] / 2, rel=0.5)
    assert 0 < result["freshness_p50_s"] <= result["freshness_p99_s"] < 30
    assert result["freshness_probes"] == 3


def test_bench_planner_writes_every_figure(tmp_path: Path, llm_cache_dir: Path) -> None:
    out = tmp_path / "planner.json"
    args = ["--users", "300", "--llm-users", "4", "--batch", "2",
            "--cache-dir", str(llm_cache_dir), "--json", str(out)]  # fmt: skip
    run(["bench", "planner", *args], timeout=900)
    result = json.loads(out.read_text())
    assert (result["users"], result["llm_users"]) == (300, 4)
    for policy in ("fixed", "rules", "llm_local"):
        row = result[policy]
        assert row["decisions_per_s"] > 0 and 0 < row["p50_ms"] <= row["p99_ms"], policy
    llm = result["llm_local"]
    assert llm["llm_plans"] + llm["idle_plans"] + llm["fallback_plans"] == 4
    assert llm["llm_calls"] <= 2 and llm["prompt_tokens"] > 0
    assert 0 <= llm["fallback_rate"] <= 1
    assert llm["tokens_per_1k_events"] > 0 and llm["events_pending"] > 0
