"""The evaluation's outputs: the JSON sections, the markdown table and the plots.

Numbers are reported as measured, including the ones that go against the
claims: each variant carries the count of evaluated users and the standard
error of HR@10, because a time split of MovieLens leaves few users with events
on both sides and small gaps between variants are noise.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from streams.eval.ablation import ABLATIONS
from streams.eval.cold import WIDE_K, CodebookCold
from streams.eval.confidence import intervals
from streams.eval.pipeline import TieredRun
from streams.eval.plots import bar_chart, scatter_chart
from streams.eval.ranking import RankingMetrics
from streams.eval.retention import retention_markdown
from streams.eval.scorer import ScorerConfig
from streams.eval.split import TimeSplit
from streams.eval.variants import RECENT_EVENTS, Ranked

__all__ = [
    "COLD_REFERENCE",
    "cold_section",
    "markdown",
    "scorer_section",
    "split_section",
    "variant_entry",
    "write_outputs",
]

# Whose memory scores the cold items for the headline cold figures (first one run).
COLD_REFERENCE = ("tiered_rules", "tiered_fixed", "tiered_llm", "flat", "recent",
                  "ease_recent", "sasrec", "sasrec_short", "sasrec_short+memory",
                  "popularity")  # fmt: skip

_OPS_COUNTED = (
    "beliefstream_ops_run_total summed over operations: consolidation and forgetting once per "
    "user they ran for, resynthesis once per profile built; the absorb operations (extraction, "
    "reinforcement, weakening) run on every batch in every tiered variant and are not counted; "
    "the planner's sentinel user (see streams.eval.watch) is subtracted"
)


def _metrics(m: RankingMetrics) -> dict[str, Any]:
    return {"hr_at_1": m.hr_at_1, "hr_at_10": m.hr_at_10, "ndcg_at_10": m.ndcg_at_10,
            "users": m.users, "hr_at_10_se": m.hr_at_10_se,
            "mean_rank_pct": m.mean_rank_pct}  # fmt: skip


def variant_entry(
    name: str,
    ranked: Ranked,
    run: TieredRun | None,
    wall_s: float,
    extra: Mapping[str, Any],
    batch_infer_s: float = 0.0,
) -> dict[str, Any]:
    """``variants.<name>``: the metrics, the cost, and what produced them.

    ``infer_ms_per_1k_users``: the time to score the evaluated users (per-user score
    calls, plus ``batch_infer_s`` for a model that scores them in one batch), per
    1,000 users; the memory reads before it and the ranking after it are not in it.
    """
    entry = _metrics(ranked.metrics) | intervals(ranked.ranks)
    entry["cold_hr_at_10"] = ranked.cold_realtime.hr_at_10
    entry["wall_s"] = round(wall_s, 2)
    users = max(ranked.metrics.users, 1)
    entry["infer_ms_per_1k_users"] = round((ranked.score_s + batch_infer_s) / users * 1e6, 2)
    entry["ops"] = 0 if run is None else run.ops
    entry["llm_calls"] = 0 if run is None else run.llm_calls
    entry["llm_tokens"] = 0 if run is None else run.llm_tokens
    details: dict[str, Any] = dict(extra)
    if run is not None:
        details |= {
            "policy": run.policy, "ops_by_op": run.ops_by_op, "ops_counted": _OPS_COUNTED,
            "plans_by_policy": run.plans_by_policy, "llm_fallbacks": run.fallbacks,
            "deferred_ops_not_run": run.deferred_ops, "scheduled_ops_not_run": run.scheduled_ops,
            "users_changed_by_maintenance": run.users_changed_by_maintenance,
            "worker_exit_code": run.exit_code, "seconds": run.seconds,
            "event_days_per_maintenance_round": run.event_days_per_round,
        }  # fmt: skip
        if run.policy == "llm":
            details["users_planned_by_llm"] = run.plans_by_policy.get("llm", 0)
            details["users_fallen_back_to_rules"] = run.plans_by_policy.get("rules", 0)
    else:
        details["ops_counted"] = "no memory lifecycle: 0"
    entry["details"] = details
    return entry


def split_section(split: TimeSplit, items: int) -> dict[str, Any]:
    if split.method == "leave-last-out":
        method, description = (
            "leave_last_out",
            (
                "each user's last interaction is held out and every earlier one (all users) is "
                "replayed through the broker and worker in timestamp order; every user with at "
                "least two interactions is evaluated on it; the replay holds other users' "
                "interactions after a given user's target, so popularity, SASRec and the "
                "collaborative item vectors see some of the future (a user's own memory does not)"
            ),
        )
    else:
        method, description = (
            "global_time",
            (
                f"interactions in timestamp order; the first {split.train_fraction:.0%} are "
                "replayed through the broker and worker, the rest held out; a user with events on "
                "both sides is evaluated on their first held-out interaction with an item they did "
                "not see in training"
            ),
        )
    return {
        "method": method,
        "description": description + "; full ranking over every catalogue item, the user's "
        "training items excluded",
        "train_fraction": round(split.train_fraction, 4),
        "train_events": len(split.train),
        "test_events": len(split.test),
        "split_ts": split.split_ts,
        "users_evaluated": len(split.targets),
        "candidates": items,
        "cold_targets": len(split.cold_targets),
    }


def scorer_section(config: ScorerConfig) -> dict[str, Any]:
    return {
        "formula": "score(i) = a*z(cos(x_i, q_C)) + b*z(cos(v_i, q_B)) + g*z(log(1+pop_i)) "
        "+ e*z(ease_i) (+ P*[i in codebook pool] when pool_first); "
        "q_C = sum_c sign_c*strength_c*e_c + w_p*profile; "
        "q_B = sum_k 0.5^(k/H)*(1 + w_k/2)*v_item_k over evidence events, newest k=0; "
        "ease_i = sum_{k<20} 0.5^(k/2)*B[item_k, i] (item-item EASE, l2 500)",
        "profile_weight": config.profile_weight,
        "weights": {
            "content": config.content,
            "collab": config.collab,
            "popularity": config.popularity,
            "ease": config.ease,
        },
        "half_life_events": config.half_life_events,
        "codebook_pool": {
            "k": config.pool,
            "facet": "collab",
            "query": "q_B",
            "ranked_first_in_headline": config.pool_first,
        },
        "item_vector": "MiniLM of 'Title (year). Genre, Genre, 1990s' (item_text + year)",
        "collab_vector": "item2vec (dim 32, window 5, 5 epochs) on the training split's "
        "per-user item sequences",
        "tiered": "chunks and strengths decayed to the target time from "
        "MemoryReader.get_user_memories_as_of (each user read as of their target), chunk and "
        "profile embeddings from the store as of the same time by chunk id; evidence: the "
        "view's recent events (the reader's default window)",
        "ease_recent": "item-item EASE (l2 500, fitted on the training split) over the user's "
        "20 newest events of the memory's event tier, weights 0.5^(k/2); not the scorer",
        "flat": "every training event of the user: pseudo-chunks (item vector, signed "
        "evidence_weight) and evidence; no profile",
        "recent": f"the user's last {RECENT_EVENTS} training events, as flat",
        "popularity": "training interaction counts",
        "sasrec": "SASRec (full softmax cross-entropy, early-stopped on each user's last "
        "training event) over the user's newest 200 events of the memory's event tier",
        "sasrec_short": "the same SASRec trained and served on the newest 50 events",
        "sasrec_short+memory": "sasrec_short that also reads the memory's 16 strongest chunks "
        "(belief key, signed decayed strength) and profile embedding as tokens, read as of "
        "just before its window of 50 events (training and test alike)",
        "source_of_flat_events": "the raw training split (the events every worker was sent)",
        "ablations": {k: {"weights": w, "codebook_pool": p} for k, (w, p) in ABLATIONS.items()},
    }


def cold_section(
    ranked: Mapping[str, Ranked],
    runs: Mapping[str, TieredRun],
    codebook: CodebookCold | None = None,
    codebook_error: str | None = None,
) -> dict[str, Any]:
    """``cold``: HR@10 on items first seen after the cut, indexed in real time or not.

    With the item codebook the headline figures are its candidates (see
    ``streams.eval.cold``); without it, the content scorer's full ranking, where
    ``rebuild_only`` cannot rank an item missing from the catalogue at the cut.
    """
    reference = next((v for v in COLD_REFERENCE if v in ranked), None)
    use_codebook = codebook is not None and reference in codebook.realtime
    per_variant: dict[str, Any] = {}
    for name, r in ranked.items():
        per_variant[name] = {
            "content_scorer": {
                "realtime": r.cold_realtime.hr_at_10,
                "rebuild_only": r.cold_rebuild_only.hr_at_10,
                "realtime_mean_rank_pct": r.cold_realtime.mean_rank_pct,
            }
        }
        if codebook is not None and name in codebook.realtime:
            per_variant[name]["codebook"] = {
                "realtime": codebook.realtime[name].hr_at_10,
                "rebuild_only": codebook.rebuild_only[name].hr_at_10,
                f"realtime_hr_at_{WIDE_K}": codebook.realtime_at_wide.get(name, 0.0),
                f"rebuild_only_hr_at_{WIDE_K}": codebook.rebuild_only_at_wide.get(name, 0.0),
            }
    section: dict[str, Any] = {
        "method": "codebook" if use_codebook else "content_scorer",
        "metric": "cold_hr_at_10",
        "targets_definition": (
            "every held-out interaction of an evaluated user whose item had no training "
            "interaction (time split: first seen after the cut; leave-last-out: seen only as "
            "someone's held-out last interaction, so there are few)"
        ),
        "definition": _COLD_CODEBOOK if use_codebook else _COLD_CONTENT,
        "variant": reference,
        "per_variant": per_variant,
    }
    if reference is not None:
        chosen = per_variant[reference]["codebook" if use_codebook else "content_scorer"]
        section |= {"realtime": chosen["realtime"], "rebuild_only": chosen["rebuild_only"],
                    "targets": ranked[reference].cold_realtime.users}  # fmt: skip
        if use_codebook:
            for key in (f"realtime_hr_at_{WIDE_K}", f"rebuild_only_hr_at_{WIDE_K}"):
                section[key] = chosen[key]
    if codebook is not None:
        section["codebook"] = {"items_at_cut": codebook.items_at_cut,
                               "items_assigned_in_real_time": codebook.items_assigned,
                               "fit_s": round(codebook.fit_s, 2),
                               f"chance_hr_at_{WIDE_K}": _chance(codebook)}  # fmt: skip
    if codebook_error is not None:
        section["codebook_error"] = codebook_error
    run = next(iter(runs.values()), None)
    if run is not None:
        section["catalogue_at_cut"] = len(run.catalogue_at_cut)
        section["catalogue_after_realtime_items"] = len(run.catalogue_after)
    return section


def _chance(codebook: CodebookCold) -> float:
    """HR@WIDE_K of a query that picked its candidates at random."""
    return round(WIDE_K / max(1, codebook.items_at_cut + codebook.items_assigned), 4)


_COLD_CONTENT = (
    "content scorer over every catalogue item; realtime: items first seen after the cut are in "
    "the catalogue (produced to the items topic after the cut and stored by the worker) and "
    "ranked like any other; rebuild_only: candidates are the catalogue at the cut only, so a "
    "cold item cannot be ranked (a miss, by construction)"
)
_COLD_CODEBOOK = (
    "ItemCodebook fitted at the cut on the content vectors of the items known then, queried "
    "with the user's content query vector for 10 candidates (and 100, reported beside; "
    "training items excluded); "
    "realtime: every later item filed with assign() as it arrives; rebuild_only: no assign, "
    "so a cold item is never a candidate"
)


def markdown(result: Mapping[str, Any]) -> str:
    """The results table and the notes needed to read it."""
    split = result["split"]
    lines = [
        f"# Replay evaluation: {result['dataset']}"
        + (f" (first {result['limit']} events)" if result.get("limit") else ""),
        "",
        f"Split {split['method']}: {split['train_events']} events replayed, "
        f"{split['test_events']} held out; {split['users_evaluated']} users evaluated on their "
        f"next interaction; full ranking over {split['candidates']} items. "
        f"Wall time {result['wall_s']:.0f} s.",
        "",
        "| variant | HR@1 | HR@10 (± se) | NDCG@10 [95 % CI] | mean rank pct | ops | LLM calls "
        "| LLM tokens | wall s | ms / 1k users |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, v in result["variants"].items():
        lo, hi = v.get("ndcg_at_10_ci95", (float("nan"), float("nan")))
        lines.append(
            f"| {name} | {v['hr_at_1']:.4f} | {v['hr_at_10']:.4f} ± {v['hr_at_10_se']:.4f} | "
            f"{v['ndcg_at_10']:.4f} [{lo:.4f}, {hi:.4f}] | {v['mean_rank_pct']:.3f} | "
            f"{v['ops']} | {v['llm_calls']} | {v['llm_tokens']} | {v['wall_s']:.1f} | "
            f"{v.get('infer_ms_per_1k_users', float('nan')):.0f} |"
        )
    compared = result.get("comparisons")
    if compared:
        lines += ["", f"NDCG@10 minus {compared['baseline']}'s, paired by user "
                  f"({compared['method']}):", "", "| variant | difference | 95 % CI | verdict |",
                  "|---|---|---|---|"]  # fmt: skip
        for name, c in [*compared["variants"].items(), *compared.get("claims", {}).items()]:
            lines.append(f"| {name} | {c['difference']:+.4f} | [{c['ci95'][0]:+.4f}, "
                         f"{c['ci95'][1]:+.4f}] | {c['verdict']} |")  # fmt: skip
    cold = result["cold"]
    if cold.get("variant"):
        wide = f"realtime_hr_at_{WIDE_K}"
        rebuilt = cold.get(f"rebuild_only_hr_at_{WIDE_K}", 0.0)
        at_wide = f" (HR@{WIDE_K}: {cold[wide]:.4f} vs {rebuilt:.4f})" if wide in cold else ""
        lines += ["", f"Cold items ({cold['method']}, memory of {cold['variant']}, "
                  f"{cold['targets']} targets): cold HR@10 real-time {cold['realtime']:.4f}, "
                  f"rebuild-only {cold['rebuild_only']:.4f}{at_wide}."]  # fmt: skip
    lines += ["", "Mean rank pct: the target's rank among the candidates as a fraction (0 = first, "
              "0.5 = chance); HR@10 ± one binomial standard error."]  # fmt: skip
    scorer = result["scorer"]
    lines += ["", f"Scorer: `{scorer['formula']}`; weights {scorer['weights']}, "
              f"w_p = {scorer['profile_weight']}, H = {scorer['half_life_events']} events, "
              f"pool {scorer['codebook_pool']['k']}.", ""]  # fmt: skip
    lines += _ablation_table(result["variants"])
    lines += _family_table(result["variants"])
    lines += retention_markdown(result.get("retention_check"))
    return "\n".join(lines)


def _ablation_table(variants: Mapping[str, Any]) -> list[str]:
    """NDCG@10 of each memory variant with parts of the formula switched off."""
    rows = {n: v["details"]["ablations"] for n, v in variants.items()
            if "ablations" in v.get("details", {})}  # fmt: skip
    if not rows:
        return []
    labels = list(ABLATIONS)
    lines = ["NDCG@10 with parts of the scorer switched off (same memories):", "",
             "| variant | full | " + " | ".join(labels) + " |",
             "|---|---|" + "---|" * len(labels)]  # fmt: skip
    for name, ab in rows.items():
        cells = " | ".join(f"{ab[k]['ndcg_at_10']:.4f}" for k in labels)
        lines.append(f"| {name} | {variants[name]['ndcg_at_10']:.4f} | {cells} |")
    lines.append("")
    return lines


def _family_table(variants: Mapping[str, Any]) -> list[str]:
    """NDCG@10 of each tiered memory without each belief family, and of the family alone."""
    rows = []
    for name, v in variants.items():
        for family, fig in v.get("details", {}).get("ablations_by_belief_family", {}).items():
            rows.append((name, family, fig))
    if not rows:
        return []
    lines = ["NDCG@10 per belief family (same memories):", "",
             "| variant | family | chunks | full | without it | it alone (content term) |",
             "|---|---|---|---|---|---|"]  # fmt: skip
    for name, family, fig in rows:
        full, without = variants[name]["ndcg_at_10"], fig["without"]["ndcg_at_10"]
        lines.append(f"| {name} | {family} | {fig['chunks']} | {full:.4f} | {without:.4f} "
                     f"| {fig['alone']['ndcg_at_10']:.4f} |")  # fmt: skip
    lines.append("")
    return lines


def write_outputs(result: Mapping[str, Any], json_file: Path, out_dir: Path) -> None:
    """The JSON, ``results.md``, ``ndcg_at_10.png`` and ``quality_vs_ops.png``."""
    json_file.parent.mkdir(parents=True, exist_ok=True)
    json_file.write_text(json.dumps(result, indent=2, sort_keys=True) + "\n")
    (out_dir / "results.md").write_text(markdown(result))
    variants = result["variants"]
    names = list(variants)
    half_widths = [(variants[n]["ndcg_at_10_ci95"][1] - variants[n]["ndcg_at_10_ci95"][0]) / 2
                   for n in names]  # fmt: skip
    bar_chart(out_dir / "ndcg_at_10.png", f"NDCG@10 on {result['dataset']} (95 % CI)", names,
              [variants[n]["ndcg_at_10"] for n in names], half_widths)  # fmt: skip
    scatter_chart(out_dir / "quality_vs_ops.png", f"NDCG@10 vs lifecycle operations, "
                  f"{result['dataset']}", [(n, float(variants[n]["ops"]),
                  variants[n]["ndcg_at_10"]) for n in names], "operations run")  # fmt: skip
