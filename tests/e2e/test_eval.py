"""The replay evaluation end to end on the first 15,000 MovieLens-100K events, leave-last-out.

Every variant runs for real (three workers through one embedded broker, the
local LLM on a budget of one call a minute, SASRec trained): the output must
be complete and consistent, never that any variant wins.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from streams.eval import VARIANTS, run_eval
from streams.eval.ablation import ABLATIONS

pytestmark = pytest.mark.e2e

METRICS = ("hr_at_1", "hr_at_10", "ndcg_at_10", "mean_rank_pct", "cold_hr_at_10")


@pytest.mark.timeout(600)
def test_eval_writes_complete_sane_results(tmp_path: Path, llm_cache_dir: Path) -> None:
    out = tmp_path / "eval.json"
    result = run_eval(
        "ml-100k",
        out,
        tmp_path / "results",
        limit=15_000,
        llm_calls_per_min=1,
        llm_cache_dir=str(llm_cache_dir),
        model_cache_dir=tmp_path / "models",
        progress=False,
    )
    assert json.loads(out.read_text()) == json.loads(json.dumps(result))
    split = result["split"]
    assert split["method"] == "leave_last_out"  # the default
    assert split["train_events"] + split["test_events"] == 15_000
    users = split["users_evaluated"]
    # Leave-last-out evaluates everyone with two interactions (MovieLens never repeats).
    assert users == split["test_events"] > 100

    variants = result["variants"]
    assert list(variants) == list(VARIANTS)
    for name, v in variants.items():
        for key in METRICS:
            assert 0.0 <= v[key] <= 1.0, (name, key)
        assert v["hr_at_1"] <= v["hr_at_10"] and v["ndcg_at_10"] <= v["hr_at_10"], name
        assert v["users"] == users, name
        assert v["ops"] >= 0 and v["llm_calls"] >= 0 and v["llm_tokens"] >= 0, name
        assert v["wall_s"] > 0 and v["infer_ms_per_1k_users"] > 0, name
        lo, hi = v["ndcg_at_10_ci95"]
        assert lo <= v["ndcg_at_10"] <= hi, name
    compared = result["comparisons"]
    assert compared["baseline"] == "ease_recent"
    assert set(compared["variants"]) == set(VARIANTS) - {"ease_recent"}
    for c in compared["variants"].values():
        assert c["ci95"][0] <= c["difference"] <= c["ci95"][1]
        assert c["verdict"] in ("beats", "below", "within noise")
    for name in ("popularity", "recent", "flat", "ease_recent", "sasrec", "sasrec_short"):
        assert variants[name]["ops"] == variants[name]["llm_calls"] == 0
    # The memory-reading SASRec costs the operations of the memory it reads.
    assert variants["sasrec_short+memory"]["ops"] == variants["tiered_fixed"]["ops"]
    ease = variants["ease_recent"]["details"]
    assert ease["events_from"] == "event tier of tiered_fixed, read as of each target"
    memory_variants = ("recent", "flat", "tiered_fixed", "tiered_rules", "tiered_llm")
    for name in memory_variants:
        ablated = variants[name]["details"]["ablations"]
        assert set(ablated) == set(ABLATIONS), name
        for figures in ablated.values():
            assert 0.0 <= figures["ndcg_at_10"] <= figures["hr_at_10"] <= 1.0, name
    scorer = result["scorer"]
    chosen = scorer["weights_from_validation"]["chosen"]
    assert chosen == {"content": scorer["weights"]["content"],
                      "popularity": scorer["weights"]["popularity"],
                      "ease": scorer["weights"]["ease"]}  # fmt: skip
    assert scorer["weights_from_validation"]["users"] > 0
    assert scorer["codebook_pool"]["items"] > 0 and scorer["codebook_pool"]["k"] > 0
    for name in ("tiered_fixed", "tiered_rules", "tiered_llm"):
        details = variants[name]["details"]
        assert details["worker_exit_code"] == 0, name
        assert details["memory"]["users"] == users
        assert details["memory"]["chunks"] > 0
        assert details["memory"]["evidence_events"] >= users  # the event tier, read back
        assert variants[name]["ops"] == sum(details["ops_by_op"].values()), name
        assert details["catalogue_at_cut_complete"], name
        after = details["memory_after_replay"]
        assert after["users"] == users and 0 < after["with_beliefs"] <= users, name
        families = details["ablations_by_belief_family"]
        assert {"genre", "era"} <= set(families), name
        assert sum(f["chunks"] for f in families.values()) == details["memory"]["chunks"], name
    fixed = variants["tiered_fixed"]["details"]["ops_by_op"]
    assert variants["tiered_fixed"]["ops"] > 0
    assert fixed["consolidation"] == fixed["forgetting"] >= fixed["resynthesis"] > 0
    llm = variants["tiered_llm"]["details"]
    assert llm["users_planned_by_llm"] + llm["users_fallen_back_to_rules"] > 0
    assert variants["tiered_llm"]["llm_calls"] <= 10  # one a minute, for a few minutes at most
    for name in ("sasrec", "sasrec_short", "sasrec_short+memory"):
        details = variants[name]["details"]
        assert details["events_from"] == "event tier of tiered_fixed, read as of each target"
        assert details["loss_last"] < details["loss_first"], name
        assert 1 <= details["best_epoch"] <= details["epochs_run"], name
        assert not details["loaded_from_cache"], name
    for name in ("sasrec", "sasrec_short"):  # trained while the workers replayed
        assert variants[name]["details"]["trained_beside_the_workers"], name
    memory_reader = variants["sasrec_short+memory"]["details"]
    assert memory_reader["memory_from"] == "tiered_fixed" and memory_reader["belief_keys"] > 0
    withheld = memory_reader["memory_withheld_at_test"]
    assert {"without_memory", "without_profile", "without_genre"} <= set(withheld)
    for figures in withheld.values():
        assert 0.0 <= figures["ndcg_at_10"] <= figures["hr_at_10"] <= 1.0

    cold = result["cold"]
    assert cold["method"] in ("content_scorer", "codebook")
    for key in ("realtime", "rebuild_only"):
        assert 0.0 <= cold[key] <= 1.0
    assert cold["catalogue_after_realtime_items"] >= cold["catalogue_at_cut"] > 0
    assert set(cold["per_variant"]) == set(VARIANTS)

    # Memories are read as of each user's target time: nothing after it was lost, by construction.
    check = result["retention_check"]
    assert check["read"] == "as of each user's target time"
    assert check["forgotten_after_target"] == {"tiered_fixed": 0, "tiered_rules": 0,
                                               "tiered_llm": 0}  # fmt: skip
    assert check["users_intact"] == users
    assert list(check["variants"]) == list(VARIANTS)
    for v in check["variants"].values():
        assert v["users"] == check["users_intact"] and 0.0 <= v["ndcg_at_10"] <= v["hr_at_10"]

    results = tmp_path / "results"
    table = (results / "results.md").read_text()
    assert all(f"| {name} |" in table for name in VARIANTS)
    for png in ("ndcg_at_10.png", "quality_vs_ops.png"):
        assert (results / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
