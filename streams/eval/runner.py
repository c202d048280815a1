"""``run_eval``: the replay evaluation end to end, one call for the CLI and the tests.

Loads the dataset, splits it (leave-last-out by default, see ``streams.eval.split``),
embeds the catalogue and learns the collaborative item vectors once, then measures
each variant on the same users with the same scorer and ranking rules: the
non-worker ones in-process, each tiered one through its own real worker run
on one shared embedded broker. Each memory variant is also re-scored with parts
of the formula switched off (the ablations), from the same memories. Writes the
JSON, a markdown table and the plots.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from memory_store.embedding import DIMENSION, MiniLMEmbedder
from memory_store.operations import LifecycleParams
from streams.eval.ablation import ablations, belief_family_ablations
from streams.eval.cold import QueryFn, cold_by_codebook
from streams.eval.collab import CollabPool, collab_matrix, popularity_counts
from streams.eval.confidence import comparisons_section
from streams.eval.ease import EaseRanker
from streams.eval.memory_read import READER_EVENTS, memory_after_replay, read_tiered_memory
from streams.eval.pipeline import Policy, RunOptions, TieredRun, run_tiered
from streams.eval.prefit import fit_at_cut
from streams.eval.report import (
    cold_section,
    scorer_section,
    split_section,
    variant_entry,
    write_outputs,
)
from streams.eval.retention import (
    events_kept_at_target,
    forgotten_after_target,
    intact_users,
    retention_section,
)
from streams.eval.sasrec import SASRecConfig
from streams.eval.sasrec_cache import default_cache_dir
from streams.eval.sasrec_runs import SasrecRunner
from streams.eval.sasrec_variants import SASREC_VARIANTS
from streams.eval.scorer import ItemSpace, MemoryVectors, ReferenceScorer, ScorerConfig
from streams.eval.split import SplitMethod, TimeSplit, make_split
from streams.eval.tiered_runs import TieredRuns
from streams.eval.tuning import tune_weights
from streams.eval.variants import (
    RECENT_EVENTS,
    Ranked,
    content_queries,
    ease_recent_scores,
    event_memories,
    memory_scores_fn,
    popularity_scores,
    rank_variant,
)
from streams.eval.watch import Status
from streams.settings import CodebookSettings
from streams.tools.broker import start_broker
from streams.tools.datasets import Dataset, load_dataset

__all__ = ["TIERED", "VARIANTS", "run_eval"]

TENANT = "movielens"
TIERED: dict[str, Policy] = {"tiered_fixed": "fixed", "tiered_rules": "rules", "tiered_llm": "llm"}
VARIANTS = (
    "popularity", "recent", "flat", "tiered_fixed", "tiered_rules", "tiered_llm", "ease_recent",
    "sasrec", "sasrec_short", "sasrec_short+memory",
)  # fmt: skip
# Variants that need neither the scorer nor a worker run (SASRec reads a run when there is one).
_STANDALONE = ("popularity", *SASREC_VARIANTS)


def run_eval(
    dataset: str = "ml-100k",
    json_path: str | Path | None = None,
    results_dir: str | Path | None = None,
    limit: int | None = None,
    variants: Sequence[str] | None = None,
    *,
    llm_calls_per_min: int = 3,
    llm_tokens_per_min: int = 20_000,
    maintain_every_s: float = 5.0,
    replay_rate: float | None = 3000.0,
    split: SplitMethod = "leave-last-out",
    train_fraction: float = 0.9,
    scorer_config: ScorerConfig | None = None,
    sasrec_epochs: int | None = None,
    seed: int = 0,
    model_cache_dir: str | Path | None = None,
    llm_cache_dir: str | None = None,
    work_dir: str | Path | None = None,
    timeout_s: float = 1800.0,
    concurrent_runs: int = 2,
    progress: bool = True,
    console: Console | None = None,
) -> dict[str, Any]:
    """Run the evaluation and return (and write) its JSON result; see ``streams.eval``.

    ``work_dir`` keeps each tiered run's LanceDB and worker log there (default: a
    temporary directory, removed at the end); it must be empty, as a memory left by
    an earlier run would be read as this one's. ``sasrec_epochs`` caps SASRec's
    epochs (default: early stopping decides, up to ``SASRecConfig.max_epochs``);
    trained models are kept in ``model_cache_dir`` (default
    ~/.cache/beliefstream/sasrec) under the hash of their data. Up to
    ``concurrent_runs`` tiered workers replay at once (``streams.eval.tiered_runs``).
    """
    chosen = list(VARIANTS if variants is None else dict.fromkeys(variants))
    unknown = [v for v in chosen if v not in VARIANTS]
    if unknown or not chosen:
        raise ValueError(f"unknown variants {unknown}; choose from {', '.join(VARIANTS)}")
    if work_dir is not None and Path(work_dir).exists() and any(Path(work_dir).iterdir()):
        raise ValueError(f"work_dir {work_dir} is not empty")
    started = time.monotonic()
    out_dir = Path(results_dir or (Path(json_path).parent if json_path else "eval-results"))
    out_dir.mkdir(parents=True, exist_ok=True)
    json_file = Path(json_path) if json_path else out_dir / "eval.json"
    console = console or Console(stderr=True)
    opts = RunOptions(maintain_every_s=maintain_every_s, replay_rate=replay_rate,
                      llm_calls_per_min=llm_calls_per_min, llm_tokens_per_min=llm_tokens_per_min,
                      llm_cache_dir=llm_cache_dir, timeout_s=timeout_s)  # fmt: skip
    seconds: dict[str, float] = {}

    data = load_dataset(dataset, tenant=TENANT, limit=limit)
    cut = make_split(data.interactions, split, train_fraction)
    if not cut.targets:
        raise ValueError(f"no user of {dataset} has interactions on both sides of the cut")
    mark = time.monotonic()
    embedder = MiniLMEmbedder()
    space = ItemSpace.embed(data.items, embedder)
    seconds["item_vectors"] = round(time.monotonic() - mark, 2)
    config = scorer_config or ScorerConfig()
    scorer, pool, ease = None, None, None
    tuning: dict[str, Any] = {"chosen": "given by the caller"}
    if any(v not in _STANDALONE for v in chosen):
        mark = time.monotonic()
        collab = collab_matrix(cut, space)
        seconds["collab_vectors"] = round(time.monotonic() - mark, 2)
        counts = popularity_counts(cut, space)
        mark = time.monotonic()
        ease = EaseRanker.fit(cut, space)
        seconds["ease_fit"] = round(time.monotonic() - mark, 2)
        scorer = ReferenceScorer(space, collab, counts, config, ease.scores)
        if scorer_config is None:  # weights from validation interactions, not the targets
            config, tuning = tune_weights(scorer, cut, seed=seed)
            scorer = ReferenceScorer(space, collab, counts, config, ease.scores)
        if config.pool > 0:
            pool = CollabPool(space, collab, cut.known_items, seed)
            seconds["collab_codebook_fit"] = round(pool.fit_s, 2)
    items_at_cut = [i for i in data.items if str(i["item_id"]) in cut.known_items]
    items_later = [i for i in data.items if str(i["item_id"]) not in cut.known_items]
    sasrec_cfg = SASRecConfig(seed=seed)
    if sasrec_epochs is not None:
        sasrec_cfg = replace(sasrec_cfg, max_epochs=sasrec_epochs)
    cache_dir = Path(model_cache_dir) if model_cache_dir is not None else default_cache_dir()

    results: dict[str, dict[str, Any]] = {}
    ranked: dict[str, Ranked] = {}
    runs: dict[str, TieredRun] = {}
    queries: dict[str, QueryFn] = {}
    forgotten: dict[str, frozenset[str]] = {}
    tiered_memories: dict[str, dict[str, MemoryVectors]] = {}
    batch_infer: dict[str, float] = {}
    kept_at_target = events_kept_at_target(
        cut, LifecycleParams(), READER_EVENTS
    )  # what the worker's retention (default params) keeps at each user's target time
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
               TimeElapsedColumn())  # fmt: skip
    prefitted = None
    if any(v in TIERED for v in chosen):
        mark = time.monotonic()
        prefitted = fit_at_cut(TENANT, items_at_cut, cut.train, embedder, CodebookSettings())
        seconds["codebook_at_cut"] = round(time.monotonic() - mark, 2)
    broker = start_broker() if any(v in TIERED for v in chosen) else None
    try:
        with (
            tempfile.TemporaryDirectory(prefix="beliefstream-eval-") as tmp_dir,
            Progress(*columns, console=console, disable=not progress) as bar,
            contextlib.ExitStack() as stack,  # the tiered runs end before the directory goes
        ):
            tmp = Path(work_dir) if work_dir is not None else Path(tmp_dir)
            overall = bar.add_task(f"{dataset}: variants", total=len(chosen))
            stage = bar.add_task("", total=None)

            def status(text: str, done: float | None, total: float | None) -> None:
                bar.update(stage, description=f"  {text}", completed=done or 0, total=total)

            sasrec = SasrecRunner(cut, space, TENANT, sasrec_cfg, cache_dir, status)

            def status_for(name: str) -> Status:
                task = bar.add_task(f"  {name}", total=None)

                def run_status(text: str, done: float | None, total: float | None) -> None:
                    bar.update(task, description=f"  {text}", completed=done or 0, total=total)

                return run_status

            def start(name: str, run_status: Status) -> TieredRun:
                assert broker is not None and prefitted is not None
                return run_tiered(broker.bootstrap_servers, tmp / name, name, TIERED[name],
                                  dataset, cut.train, items_at_cut, items_later, TENANT, opts,
                                  run_status, prefitted)  # fmt: skip

            # Longest first: fixed runs the most operations, llm the fewest.
            tiered = TieredRuns([n for n in TIERED if n in chosen], start, status_for,
                                concurrent_runs)  # fmt: skip
            stack.enter_context(tiered)
            for name in chosen if TIERED.keys() & set(chosen) else ():
                if name in SASREC_VARIANTS:
                    sasrec.warm(name)
            for name in chosen:
                status(name, None, None)
                mark = time.monotonic()
                extra: dict[str, Any] = {}
                memories: dict[str, MemoryVectors] | None = None
                if name == "popularity":
                    score = popularity_scores(cut, space)
                elif name in SASREC_VARIANTS:
                    score, extra, batch_infer[name] = sasrec.run(name, runs)
                elif name == "ease_recent":
                    assert ease is not None  # fitted with the scorer: ease_recent needs it
                    score, extra = ease_recent_scores(cut, space, tiered_memories, ease)
                elif name in ("flat", "recent"):
                    memories = event_memories(
                        cut, space, RECENT_EVENTS if name == "recent" else None
                    )
                else:
                    status(f"{name}: waiting for its worker run", None, None)
                    run = tiered.result(name)
                    # Its wall time: the worker's own, then reading and ranking (below).
                    mark = time.monotonic() - run.seconds.get("worker", 0.0)
                    status(f"{name}: reading memory through MemoryReader", None, None)
                    memories, stats = read_tiered_memory(
                        run.lancedb_uri, TENANT, list(cut.targets), embedder, DIMENSION,
                        {u: float(row["ts"]) for u, row in cut.targets.items()},
                    )  # fmt: skip
                    runs[name] = run
                    tiered_memories[name] = memories
                    forgotten[name] = forgotten_after_target(memories, kept_at_target)
                    extra = {
                        "memory": asdict(stats),
                        "memory_after_replay": memory_after_replay(
                            run.lancedb_uri, TENANT, list(cut.targets)
                        ),
                        "catalogue_at_cut_complete": run.catalogue_at_cut == cut.known_items,
                    }
                if memories is not None:
                    assert scorer is not None
                    queries[name] = content_queries(scorer, memories)
                    score = memory_scores_fn(name, scorer, memories, cut, pool)
                status(f"{name}: ranking", None, None)
                ranked[name] = rank_variant(score, cut, space, cut.known_items)
                wall = time.monotonic() - mark
                if memories is not None:
                    assert scorer is not None
                    status(f"{name}: ablations", None, None)
                    extra["ablations"] = ablations(name, scorer, memories, cut, pool)
                    if name in TIERED:
                        extra["ablations_by_belief_family"] = belief_family_ablations(
                            name, scorer, memories, cut, pool
                        )
                results[name] = variant_entry(name, ranked[name], runs.get(name), wall, extra,
                                              batch_infer.get(name, 0.0))  # fmt: skip
                if "memory_from" in extra:  # what it reads cost the memory's operations
                    results[name]["ops"] = runs[extra["memory_from"]].ops
                    results[name]["details"]["ops_counted"] = "those of memory_from's run"
                bar.advance(overall)
            bar.remove_task(stage)
    finally:
        if broker is not None:
            broker.stop()
    cold = cold_by_codebook(space, cut, cut.known_items, queries, seed, console)
    seconds["total"] = round(time.monotonic() - started, 2)
    result = _result(dataset, limit, data, cut, results, config, seconds)
    result["scorer"]["weights_from_validation"] = tuning
    if pool is not None:
        result["scorer"]["codebook_pool"] |= {"items": pool.items, "fit_s": round(pool.fit_s, 2)}
    result["cold"] = cold_section(ranked, runs, *cold)
    result["comparisons"] = comparisons_section({n: r.ranks for n, r in ranked.items()})
    if forgotten and cut.method == "leave-last-out":
        check = intact_users(forgotten, list(cut.targets),
                             {n: (r.ranks, r.candidates) for n, r in ranked.items()})  # fmt: skip
        result["retention_check"] = retention_section(check, READER_EVENTS)
    write_outputs(result, json_file, out_dir)
    console.print(f"[green]eval written[/]: {json_file} and {out_dir} in {seconds['total']:.0f}s")
    return result


def _result(
    dataset: str,
    limit: int | None,
    data: Dataset,
    split: TimeSplit,
    results: dict[str, dict[str, Any]],
    config: ScorerConfig,
    seconds: dict[str, float],
) -> dict[str, Any]:
    return {
        "dataset": dataset,
        "limit": limit,
        "events": len(data.interactions),
        "items": len(data.items),
        "split": split_section(split, len(data.items)),
        "scorer": scorer_section(config),
        "variants": results,
        "seconds": seconds,
        "wall_s": seconds["total"],
        "machine": {"cpus": os.cpu_count(), "load_avg_1m": round(os.getloadavg()[0], 2)},
    }
