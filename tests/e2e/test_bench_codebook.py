"""``bench codebook`` runs end to end on a small catalogue and writes complete, sane JSON.

It checks that every figure exists and hangs together, never that a target is
met: the targets are for the 1M-item run, whose figures live in its output.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.e2e.test_cli import run

pytestmark = pytest.mark.e2e


@pytest.mark.timeout(900)  # the long one: synthetic, ml-1m and freshness (~280 s here)
def test_bench_codebook_writes_every_figure(tmp_path: Path) -> None:
    out = tmp_path / "codebook.json"
    run(["bench", "codebook", "--items", "20000", "--users", "40", "--freshness-probes", "3",
         "--json", str(out)], timeout=900)  # fmt: skip
    result = json.loads(out.read_text())
    assert (result["k"], result["users"], result["pool"]) == (100, 40, 1000)
    for name in ("synthetic", "ml1m"):
        part = result[name]
        for key in ("recall_at_100", "recall_at_100_after_refresh", "cold_recall_at_100",
                    "cold_recall_at_100_rebuild_only", "cold_recall_at_100_after_refresh", "churn",
                    "churn_wanted", "utilisation"):  # fmt: skip
            assert 0.0 <= part[key] <= 1.0, (name, key, part[key])
        assert part["speedup_vs_exact"] > 0 and part["speedup_vs_exact_batched"] > 0
        # The JSON rounds the ratio to 2 decimals: below 1 that alone is up to 2.5% off.
        assert part["speedup_vs_exact"] == pytest.approx(
            part["exact"]["single_ms"] / part["codebook_single_ms"], rel=0.02, abs=0.005
        )
        ivf = part["ivf_pq"]
        assert 0.0 <= ivf["recall_at_100"] <= 1.0 and ivf["speedup_vs_exact"] > 0
        assert ivf["nprobes"] >= 1 and ivf["refine_factor"] >= 1 and ivf["build_s"] > 0
        assert part["churn"] <= part["max_churn"] + 1e-9  # the bound holds
        assert part["cold_recall_at_100_rebuild_only"] == 0.0  # cold items were not indexed
        assert part["cold_users"] > 0 and part["cold_items"] > 0
        assert 0 < part["assign_ms_p50"] <= part["assign_ms_p99"]
        leaves = part["leaf_stats"]
        assert leaves["items"] == part["items"] if name == "synthetic" else leaves["items"] > 0
        assert 0 < leaves["p50"] <= leaves["p99"] <= leaves["max"]
        pools = [row["pool"] for row in part["pool_sweep"]]
        assert pools == sorted(pools) and 1000 in pools
        assert all(0.0 <= row["recall_at_100"] <= 1.0 for row in part["pool_sweep"])
    assert result["synthetic"]["items"] == 20000
    assert result["ml1m"]["items"] == 3883 and 0 < result["ml1m"]["warm_items"] < 3883
    assert 0.0 <= result["ml1m"]["collab"]["recall_at_100"] <= 1.0
    assert result["recall_at_100"] == result["synthetic"]["recall_at_100"]
    assert result["ivf_pq_speedup_vs_exact"] == result["synthetic"]["ivf_pq"]["speedup_vs_exact"]
    fresh = result["freshness"]  # broker -> worker -> serve: the item came back from candidates
    assert fresh["freshness_probes"] == 3 and fresh["freshness_indexed_items"] >= 5  # + 2 warm-up
    assert 0 < fresh["freshness_p50_s"] <= fresh["freshness_p99_s"] <= fresh["freshness_max_s"]
    assert result["freshness_p99_s"] == fresh["freshness_p99_s"]
