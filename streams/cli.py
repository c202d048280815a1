"""The ``beliefstream`` command line: broker, worker, serve, replay, memory, demo, bench."""

from __future__ import annotations

import json
import signal
import threading
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from memory_store.store import UserMemory
from streams.settings import Settings

__all__ = ["main"]

app = typer.Typer(no_args_is_help=True, add_completion=False, help=__doc__)
memory_app = typer.Typer(no_args_is_help=True, help="Read stored memory.")
bench_app = typer.Typer(no_args_is_help=True, help="Benchmarks that write JSON.")
app.add_typer(memory_app, name="memory")
app.add_typer(bench_app, name="bench")

console = Console()


@app.command()
def broker(
    port: Annotated[int, typer.Option(help="Loopback port; 0 picks a free one.")] = 9092,
) -> None:
    """Run a local Kafka-protocol broker (Tansu, in memory) until Ctrl-C."""
    from streams.tools.broker import start_broker

    running = start_broker(port)
    console.print(f"broker listening on [bold]{running.bootstrap_servers}[/] (Ctrl-C stops it)")
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        while not stop.is_set() and running.process.poll() is None:
            stop.wait(0.5)
    except KeyboardInterrupt:
        pass
    finally:
        running.stop()
    if running.process.returncode not in (0, -signal.SIGTERM, None):
        raise typer.Exit(1)


@app.command()
def worker() -> None:
    """Consume interactions into the event tier (settings from BELIEFSTREAM_* variables)."""
    from streams.worker.run import run_worker

    run_worker(Settings())


@app.command()
def serve() -> None:
    """Serve the ranker read API over HTTP (BELIEFSTREAM_API_KEYS maps each key to a tenant)."""
    from streams.serve.api import serve as run_server

    run_server(Settings())


@app.command()
def replay(
    dataset: Annotated[str, typer.Argument(help="ml-100k, ml-1m, or a .jsonl/.csv file.")],
    tenant: Annotated[str, typer.Option(help="Tenant for rows that name none.")] = "movielens",
    limit: Annotated[
        int | None, typer.Option(help="Only the first N events in time order.")
    ] = None,
    rate: Annotated[
        float | None, typer.Option(help="Events per second; unlimited if unset.")
    ] = None,
) -> None:
    """Produce a dataset into the interactions and items topics, in timestamp order."""
    from streams.tools.datasets import load_dataset
    from streams.tools.replay import replay as run_replay

    data = load_dataset(dataset, tenant=tenant, limit=limit)
    result = run_replay(Settings(), data, rate=rate, progress=True)
    console.print(
        f"produced {result.interactions} interactions and {result.items} items "
        f"in {result.seconds:.1f}s"
    )


@memory_app.command("show")
def memory_show(
    user: Annotated[str, typer.Argument(help="User id.")],
    tenant: Annotated[str, typer.Option(help="Tenant the user belongs to.")],
    limit: Annotated[int, typer.Option(help="Recent events to print.")] = 20,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """Print one user's stored memory."""
    from memory_store.lance.store import open_store
    from streams.tools.show import print_memory

    settings = Settings()
    settings.apply_storage()
    memory = open_store(settings.lancedb_uri).read_user(tenant, user, limit)
    if as_json:
        typer.echo(json.dumps(memory_json(memory), default=str))
    else:
        print_memory(console, memory)


@memory_app.command("diff")
def memory_diff(
    store_a: Annotated[str, typer.Argument(help="LanceDB URI (path) of the first store.")],
    store_b: Annotated[str, typer.Argument(help="LanceDB URI (path) of the second store.")],
    tenant: Annotated[str | None, typer.Option(help="Compare one tenant only.")] = None,
    tol: Annotated[float, typer.Option(help="Strengths closer than this are equal.")] = 1e-9,
    show: Annotated[int, typer.Option(help="Users to detail.")] = 10,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Per-user differences between two stores (exit 1 if any): check a replay is reproducible."""
    from memory_store.compare import diff_stores
    from memory_store.lance.store import open_store

    found = diff_stores(open_store(store_a), open_store(store_b), tenant, tol)
    summary = {
        "users": found.users,
        "users_differing": len(found.differing),
        "chunks_differing": found.chunks_differing,
        "max_strength_diff": found.max_strength_diff,
    }
    if as_json:
        detail = [
            {"tenant": d.tenant, "user_id": d.user_id, "chunks": d.chunks,
             "profile": d.profile, "events": d.events[:20]}
            for d in found.differing[:show]
        ]  # fmt: skip
        typer.echo(json.dumps({**summary, "differing": detail}))
    else:
        console.print(
            f"{found.users} users compared: {len(found.differing)} differ, "
            f"{found.chunks_differing} chunks differ, "
            f"largest strength difference {found.max_strength_diff:.3g}"
        )
        for d in found.differing[:show]:
            console.print(f"[bold]{d.tenant}/{d.user_id}[/]")
            for line in [*d.chunks, *d.profile, *d.events][:12]:
                console.print(f"  {line}", markup=False)
    if found.differing:
        raise typer.Exit(1)


@app.command()
def demo(
    limit: Annotated[int | None, typer.Option(help="Replay only the first N events.")] = None,
    data_dir: Annotated[
        Path | None, typer.Option(help="Keep LanceDB here (temp dir if unset).")
    ] = None,
) -> None:
    """Broker + worker + MovieLens-100K replay; prints throughput and one user's memory."""
    from streams.tools.demo import run_demo

    raise typer.Exit(run_demo(console, limit=limit, data_dir=data_dir))


@bench_app.command("ingest")
def bench_ingest(
    events: Annotated[int, typer.Option(help="Events pre-filled into the topic.")] = 50_000,
    event_bytes: Annotated[int, typer.Option(help="Approximate JSON size per event.")] = 1024,
    round_clock: Annotated[
        str, typer.Option(help="The worker's planner rounds: event (default) or wall.")
    ] = "event",
    json_path: Annotated[Path, typer.Option("--json", help="Where to write the results.")] = Path(
        "bench-results/ingest.json"
    ),
) -> None:
    """aiokafka vs no-op Faust vs the full pipeline vs Quix Streams, on one broker."""
    from streams.bench.ingest import run_ingest_bench

    if round_clock not in ("event", "wall"):
        raise typer.BadParameter("--round-clock must be event or wall")
    results = run_ingest_bench(events, console, event_bytes=event_bytes, round_clock=round_clock)
    json_path.parent.mkdir(parents=True, exist_ok=True)
    json_path.write_text(json.dumps(results, indent=2) + "\n")
    console.print_json(json.dumps(results))


@bench_app.command("reproducible")
def bench_reproducible(
    dataset: Annotated[str, typer.Option(help="Bundled dataset to replay.")] = "ml-100k",
    limit: Annotated[int | None, typer.Option(help="Replay only the first N events.")] = None,
    round_event_s: Annotated[
        float, typer.Option(help="The planner round, in event-time seconds.")
    ] = 86_400.0,
    policy: Annotated[str, typer.Option(help="fixed or rules.")] = "fixed",
    data_dir: Annotated[
        Path | None, typer.Option(help="Keep the three stores here (temp dir if unset).")
    ] = None,
    json_path: Annotated[Path, typer.Option("--json", help="Where to write the results.")] = Path(
        "bench-results/reproducible.json"
    ),
) -> None:
    """Three worker runs of one replay (two batch sizes, one killed and restarted), compared."""
    from streams.bench.reproducible import run_reproducible_bench

    results = run_reproducible_bench(
        console, dataset, limit, round_event_s, extra={"policy": policy}, data_dir=data_dir
    )
    json_path.parent.mkdir(parents=True, exist_ok=True)
    json_path.write_text(json.dumps(results, indent=2) + "\n")
    console.print_json(json.dumps(results))


@bench_app.command("read")
def bench_read(
    users: Annotated[int, typer.Option(help="Synthetic users to build memory for.")] = 100_000,
    chunks: Annotated[int, typer.Option(help="Preference chunks per user.")] = 20,
    hot_users: Annotated[int, typer.Option(help="Users the warm reads cycle over.")] = 2000,
    reads: Annotated[int, typer.Option(help="Warm Python reads to time.")] = 20_000,
    http_seconds: Annotated[float, typer.Option(help="Duration of the HTTP load.")] = 10.0,
    concurrency: Annotated[int, typer.Option(help="Concurrent HTTP clients.")] = 16,
    probes: Annotated[int, typer.Option(help="Freshness probes.")] = 30,
    json_path: Annotated[Path, typer.Option("--json", help="Where to write the results.")] = Path(
        "bench-results/read.json"
    ),
) -> None:
    """Python API and HTTP read latency, HTTP throughput, and write-to-read freshness."""
    from streams.bench.read import run_read_bench

    results = run_read_bench(users, console, chunks, hot_users, reads, http_seconds,
                             concurrency, probes)  # fmt: skip
    json_path.parent.mkdir(parents=True, exist_ok=True)
    json_path.write_text(json.dumps(results, indent=2) + "\n")
    console.print_json(json.dumps(results))


@bench_app.command("planner")
def bench_planner(
    users: Annotated[int, typer.Option(help="Synthetic users for fixed and rules.")] = 10_000,
    llm_users: Annotated[int, typer.Option(help="Of those, how many the LLM decides.")] = 50,
    batch: Annotated[int, typer.Option(help="Users per LLM prompt.")] = 4,
    cache_dir: Annotated[
        Path | None, typer.Option(help="Where the de-quantized model is kept.")
    ] = None,
    json_path: Annotated[Path, typer.Option("--json", help="Where to write the results.")] = Path(
        "bench-results/planner.json"
    ),
    openai_url: Annotated[
        str | None,
        typer.Option(help="Also bench the openai backend at this URL (e.g. llm-serve's /v1)."),
    ] = None,
    openai_model: Annotated[str, typer.Option(help="The model name to ask for.")] = "",
    openai_key: Annotated[
        str, typer.Option(envvar="BELIEFSTREAM_LLM_API_KEY", help="Bearer key, if any.")
    ] = "",
) -> None:
    """Decisions/s, p99 latency, LLM calls, tokens and fallbacks of each planner policy."""
    from streams.bench.planner import OpenAIEndpoint, run_planner_bench

    endpoint = None if openai_url is None else OpenAIEndpoint(openai_url, openai_model, openai_key)
    results = run_planner_bench(users, console, llm_users, batch, cache_dir, endpoint)
    json_path.parent.mkdir(parents=True, exist_ok=True)
    json_path.write_text(json.dumps(results, indent=2) + "\n")
    console.print_json(json.dumps(results))


@bench_app.command("codebook")
def bench_codebook(
    items: Annotated[int, typer.Option(help="Synthetic 384-d items.")] = 1_000_000,
    users: Annotated[int, typer.Option(help="User vectors queried per data set.")] = 200,
    pool: Annotated[int, typer.Option(help="Candidates re-scored exactly per query.")] = 1000,
    ml1m: Annotated[bool, typer.Option(help="Also run on the ML-1M movies.")] = True,
    freshness_probes: Annotated[
        int, typer.Option(help="Items timed from the broker to candidates over HTTP (0: skip).")
    ] = 20,
    json_path: Annotated[Path, typer.Option("--json", help="Where to write the results.")] = Path(
        "bench-results/codebook.json"
    ),
) -> None:
    """Code-path candidates vs exact search vs LanceDB IVF_PQ: recall@100, speed, churn, cold;
    freshness of a new item through the broker, the worker and the HTTP server."""
    from streams.bench.codebook import run_codebook_bench

    results = run_codebook_bench(items, console, users, pool, ml1m, freshness_probes)
    json_path.parent.mkdir(parents=True, exist_ok=True)
    json_path.write_text(json.dumps(results, indent=2) + "\n")
    console.print_json(json.dumps(results))


@app.command("eval")
def evaluate(
    dataset: Annotated[str, typer.Option(help="ml-100k or ml-1m.")] = "ml-100k",
    json_path: Annotated[Path, typer.Option("--json", help="Where to write the JSON.")] = Path(
        "eval-results/eval.json"
    ),
    results: Annotated[
        Path | None,
        typer.Option(help="Folder for results.md and the plots (default: beside --json)."),
    ] = None,
    limit: Annotated[
        int | None, typer.Option(help="Only the first N events (a quick run).")
    ] = None,
    variant: Annotated[
        list[str] | None, typer.Option(help="Run only these variants (repeatable).")
    ] = None,
    split: Annotated[
        str,
        typer.Option(
            help="leave-last-out (default: every user evaluated on their last interaction) "
            "or time (a global 90/10 time split)."
        ),
    ] = "leave-last-out",
    model_cache_dir: Annotated[
        Path | None,
        typer.Option(
            help="Where trained SASRec models are kept, by data hash "
            "(default ~/.cache/beliefstream/sasrec)."
        ),
    ] = None,
    sasrec_epochs: Annotated[
        int | None, typer.Option(help="Cap SASRec's epochs (default: early stopping decides).")
    ] = None,
    concurrent_runs: Annotated[
        int, typer.Option(min=1, help="Tiered variants' workers replaying at once.")
    ] = 2,
) -> None:
    """Replay a dataset through the real pipeline and rank held-out items per memory variant."""
    from streams.eval import run_eval
    from streams.eval.split import SPLITS

    if split not in SPLITS:
        raise typer.BadParameter(f"choose from {', '.join(SPLITS)}", param_hint="--split")
    run_eval(
        dataset,
        json_path,
        results if results is not None else json_path.parent,
        limit=limit,
        variants=variant or None,
        split="time" if split == "time" else "leave-last-out",
        model_cache_dir=model_cache_dir,
        sasrec_epochs=sasrec_epochs,
        concurrent_runs=concurrent_runs,
        console=console,
    )


@app.command("llm-serve")
def llm_serve(
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8001,
    cache_dir: Annotated[
        Path | None, typer.Option(help="Where the de-quantized model is kept.")
    ] = None,
    api_key: Annotated[
        str | None,
        typer.Option(envvar="BELIEFSTREAM_LLM_API_KEY", help="Bearer key clients must send."),
    ] = None,
) -> None:
    """Serve the packaged LLM over an OpenAI-compatible API, for workers to share."""
    from planner.llm.serve import serve as run_llm_server

    run_llm_server(host, port, cache_dir, api_key)


def memory_json(memory: UserMemory) -> dict[str, object]:
    """``memory show --json``: the three tiers and the latest changes as plain JSON."""
    profile = memory.profile
    return {
        "tenant": memory.tenant,
        "user_id": memory.user_id,
        "event_count": memory.event_count,
        "profile": None
        if profile is None
        else {"narrative": profile.narrative, "version": profile.version,
              "built_at": profile.built_at, "sources": len(profile.sources)},
        "chunks": [
            {"chunk_id": c.chunk_id, "facet": c.facet, "text": c.text,
             "polarity": c.polarity.value, "strength": c.strength,
             "evidence_count": c.evidence_count, "last_seen": c.last_seen, "version": c.version}
            for c in memory.chunks
        ],
        "recent_events": memory.recent_events,
        "recent_changes": memory.recent_changes,
    }  # fmt: skip


def main() -> None:
    app()


if __name__ == "__main__":
    main()
