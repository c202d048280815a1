"""``run_eval``: the replay evaluation end to end, one call for the CLI and the tests.

Loads the dataset, cuts it in time, embeds the catalogue once, then measures
each variant on the same users with the same scorer and ranking rules: the
non-worker ones in-process, each tiered one through its own real worker run
on one shared embedded broker. Writes the JSON, a markdown table and the plots.
"""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from memory_store.embedding import DIMENSION, MiniLMEmbedder
from streams.broker import start_broker
from streams.datasets import Dataset, load_dataset
from streams.eval.cold import CodebookCold, QueryFn, codebook_cold
from streams.eval.memory_read import read_tiered_memory
from streams.eval.pipeline import Policy, RunOptions, TieredRun, run_tiered
from streams.eval.report import (
    cold_section,
    scorer_section,
    split_section,
    variant_entry,
    write_outputs,
)
from streams.eval.sasrec import SASRecConfig
from streams.eval.scorer import ItemSpace
from streams.eval.split import TimeSplit, time_split
from streams.eval.variants import (
    RECENT_EVENTS,
    Ranked,
    event_queries,
    memory_queries,
    popularity_scores,
    query_scores,
    rank_variant,
    sasrec_scores,
)

__all__ = ["TIERED", "VARIANTS", "run_eval"]

TENANT = "movielens"
TIERED: dict[str, Policy] = {"tiered_fixed": "fixed", "tiered_rules": "rules", "tiered_llm": "llm"}
VARIANTS = ("popularity", "recent", "flat", "tiered_fixed", "tiered_rules", "tiered_llm", "sasrec")
# Training events above which SASRec trains for fewer epochs (ml-1m: ~35 s an epoch here).
_LARGE = 200_000


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
    train_fraction: float = 0.9,
    profile_weight: float = 1.0,
    sasrec_epochs: int | None = None,
    seed: int = 0,
    llm_cache_dir: str | None = None,
    work_dir: str | Path | None = None,
    timeout_s: float = 900.0,
    progress: bool = True,
    console: Console | None = None,
) -> dict[str, Any]:
    """Run the evaluation and return (and write) its JSON result; see ``streams.eval``.

    ``work_dir`` keeps each tiered run's LanceDB and worker log there (default: a
    temporary directory, removed at the end); it must be empty, as a memory left by
    an earlier run would be read as this one's.
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
    opts = RunOptions(maintain_every_s, replay_rate, llm_calls_per_min, llm_tokens_per_min,
                      llm_cache_dir=llm_cache_dir, timeout_s=timeout_s)  # fmt: skip
    seconds: dict[str, float] = {}

    data = load_dataset(dataset, tenant=TENANT, limit=limit)
    split = time_split(data.interactions, train_fraction)
    if not split.targets:
        raise ValueError(f"no user of {dataset} has interactions on both sides of the cut")
    mark = time.monotonic()
    embedder = MiniLMEmbedder()
    space = ItemSpace.embed(data.items, embedder)
    seconds["item_vectors"] = round(time.monotonic() - mark, 2)
    items_at_cut = [i for i in data.items if str(i["item_id"]) in split.known_items]
    items_later = [i for i in data.items if str(i["item_id"]) not in split.known_items]
    epochs = sasrec_epochs or (20 if len(split.train) <= _LARGE else 4)

    results: dict[str, dict[str, Any]] = {}
    ranked: dict[str, Ranked] = {}
    runs: dict[str, TieredRun] = {}
    queries: dict[str, QueryFn] = {}
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
               TimeElapsedColumn())  # fmt: skip
    broker = start_broker() if any(v in TIERED for v in chosen) else None
    try:
        with (
            tempfile.TemporaryDirectory(prefix="beliefstream-eval-") as tmp_dir,
            Progress(*columns, console=console, disable=not progress) as bar,
        ):
            tmp = Path(work_dir) if work_dir is not None else Path(tmp_dir)
            overall = bar.add_task(f"{dataset}: variants", total=len(chosen))
            stage = bar.add_task("", total=None)

            def status(text: str, done: float | None, total: float | None) -> None:
                bar.update(stage, description=f"  {text}", completed=done or 0, total=total)

            for name in chosen:
                status(name, None, None)
                mark = time.monotonic()
                extra: dict[str, Any] = {}
                if name == "popularity":
                    score = popularity_scores(split, space)
                elif name in ("flat", "recent"):
                    last = RECENT_EVENTS if name == "recent" else None
                    queries[name] = event_queries(split, space, last, profile_weight)
                    score = query_scores(space, queries[name])
                elif name == "sasrec":
                    cfg = SASRecConfig(epochs=epochs, seed=seed)
                    score, extra = sasrec_scores(
                        split, space, cfg,
                        lambda e, loss: status(f"sasrec: epochs (loss {loss:.3f})", e, epochs),
                    )  # fmt: skip
                else:
                    assert broker is not None
                    run = run_tiered(broker.bootstrap_servers, tmp / name, name,
                                     TIERED[name], dataset, split.train,
                                     items_at_cut, items_later, TENANT, opts, status)  # fmt: skip
                    status(f"{name}: reading memory through MemoryReader", None, None)
                    memories, stats = read_tiered_memory(
                        run.lancedb_uri, TENANT, list(split.targets), embedder, DIMENSION
                    )
                    queries[name] = memory_queries(memories, space, profile_weight)
                    score = query_scores(space, queries[name])
                    runs[name] = run
                    extra = {
                        "memory": asdict(stats),
                        "catalogue_at_cut_complete": run.catalogue_at_cut == split.known_items,
                    }
                status(f"{name}: ranking", None, None)
                ranked[name] = rank_variant(score, split, space, split.known_items)
                wall = time.monotonic() - mark
                results[name] = variant_entry(name, ranked[name], runs.get(name), wall, extra)
                bar.advance(overall)
            bar.remove_task(stage)
    finally:
        if broker is not None:
            broker.stop()
    cold = _cold_by_codebook(space, split, split.known_items, queries, seed, console)
    seconds["total"] = round(time.monotonic() - started, 2)
    result = _result(dataset, limit, data, split, results, profile_weight, seconds)
    result["cold"] = cold_section(ranked, runs, *cold)
    write_outputs(result, json_file, out_dir)
    console.print(f"[green]eval written[/]: {json_file} and {out_dir} in {seconds['total']:.0f}s")
    return result


def _result(
    dataset: str,
    limit: int | None,
    data: Dataset,
    split: TimeSplit,
    results: dict[str, dict[str, Any]],
    profile_weight: float,
    seconds: dict[str, float],
) -> dict[str, Any]:
    return {
        "dataset": dataset,
        "limit": limit,
        "events": len(data.interactions),
        "items": len(data.items),
        "split": split_section(split, len(data.items)),
        "scorer": scorer_section(profile_weight),
        "variants": results,
        "seconds": seconds,
        "wall_s": seconds["total"],
        "machine": {"cpus": os.cpu_count(), "load_avg_1m": round(os.getloadavg()[0], 2)},
    }


def _cold_by_codebook(
    space: ItemSpace,
    split: TimeSplit,
    at_cut: frozenset[str],
    queries: dict[str, QueryFn],
    seed: int,
    console: Console,
) -> tuple[CodebookCold | None, str | None]:
    """The codebook's cold figures, or why they could not be had (then: the content scorer)."""
    if not queries or not split.cold_targets:
        return None, "no memory variant or no cold target to query the codebook with"
    try:
        return codebook_cold(space, split, at_cut, queries, seed), None
    except Exception as exc:  # another piece of work, still moving: fall back, say why
        console.print(f"[yellow]item codebook unavailable, cold items by the content scorer: "
                      f"{exc!r}[/]")  # fmt: skip
        return None, repr(exc)
