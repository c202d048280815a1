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
