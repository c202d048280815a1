"""``beliefstream bench codebook``: code-path candidates (no ANN search) against exact search
and LanceDB IVF_PQ, on N synthetic 384-d items and on ML-1M.

Synthetic items imitate sentence embeddings: 100 topics x 20 sub-topics in a
48-d latent space, mapped into 384-d, plus isotropic noise carrying 20 % of the
energy; unit length. Items arrive in order: the last 2 % (the cold slice) carry
the 5 % of sub-topics that are new. Co-engagement pairs join items of a
sub-topic. A user is the mean of 3 items of one sub-topic; the truth is the
exact top-100 over all items. Steps, each measured:

1. fit on the warm items; cold users' recall of cold items with the index left
   as built (``rebuild only``: cold items are not in it);
2. assign every cold item in real time (latency per item), cold recall again;
3. recall@100 and time per query on the full catalogue for several re-score
   pools, exact search single and batched, IVF_PQ on the same vectors;
4. refresh after fine-tuning on pairs of the newest half, with bounded churn;
   recall and cold recall again.
"""

from __future__ import annotations

import os
import statistics
import time
from typing import Any

import torch
import torch.nn.functional as F
from rich.console import Console
from rich.table import Table
from torch import Generator, Tensor

from memory_store.candidates import CONTENT
from memory_store.codebook.item2vec import ItemVectors
from memory_store.codebook.item_codebook import ItemCodebook
from memory_store.codebook.tenant_state import CodebookConfig
from streams.bench._codebook_fresh import run_freshness
from streams.bench._codebook_ml1m import run_movielens
from streams.bench._codebook_parts import (
    MAX_CHURN,
    K,
    code_recall,
    exact_truth,
    ivf_pq,
    percentile,
    summary,
)

__all__ = ["POOLS", "run_codebook_bench", "synthetic_items"]

DIM, LATENT, TOPICS, SUBTOPICS = 384, 48, 100, 20
NOISE = 0.5  # isotropic noise norm / signal norm: 20 % of the energy
COLD, NEW = 0.02, 0.05  # the cold slice, and the share of sub-topics only it carries
POOLS = (100, 500, 1000, 2000)
TENANT = "bench"


def synthetic_items(n: int, g: Generator) -> tuple[Tensor, Tensor, int]:
    """Unit vectors ``[n, 384]``, each item's sub-topic, and how many items are warm."""
    basis = torch.linalg.qr(torch.randn(DIM, LATENT, generator=g))[0]
    topics = torch.randn(TOPICS, LATENT, generator=g)
    centres = topics.repeat_interleave(SUBTOPICS, 0) + 0.7 * torch.randn(
        TOPICS * SUBTOPICS, LATENT, generator=g
    )
    total = centres.shape[0]
    old = total - int(NEW * total)
    warm = n - max(1, int(COLD * n))
    sub = torch.randint(0, old, (n,), generator=g)
    fresh = torch.rand(n - warm, generator=g) < 0.5  # half the cold slice: new sub-topics
    sub[warm:][fresh] = torch.randint(old, total, (int(fresh.sum()),), generator=g)
    x = torch.empty((n, DIM))
    for start in range(0, n, 100_000):
        part = sub[start : start + 100_000]
        latent = centres[part] + 0.5 * torch.randn(part.shape[0], LATENT, generator=g)
        signal = F.normalize(latent @ basis.t(), dim=-1)
        noise = F.normalize(torch.randn(part.shape[0], DIM, generator=g), dim=-1)
        x[start : start + part.shape[0]] = F.normalize(signal + NOISE * noise, dim=-1)
    return x, sub, warm


def _users(x: Tensor, sub: Tensor, topics: Tensor, g: Generator) -> Tensor:
    """One user per sub-topic given: the mean of 3 of its items."""
    users = []
    for topic in topics.tolist():
        members = torch.nonzero(sub == topic).flatten()
        picks = members[torch.randint(0, members.shape[0], (3,), generator=g)]
        users.append(F.normalize(x[picks].mean(0), dim=-1))
    return torch.stack(users)


def _pairs(sub: Tensor, start: int, count: int, g: Generator) -> list[tuple[str, str]]:
    """``count`` co-engaged pairs among items ``start:``: two items of one sub-topic."""
    rows = torch.arange(start, sub.shape[0])
    order = rows[torch.argsort(sub[rows], stable=True)]
    _, sizes = torch.unique_consecutive(sub[order], return_counts=True)
    offsets = torch.cumsum(sizes, 0) - sizes
    pick = torch.randint(0, order.shape[0], (count,), generator=g)
    group = torch.searchsorted(offsets, pick, right=True) - 1
    other = offsets[group] + (torch.rand(count, generator=g) * sizes[group]).long()
    a, b = order[pick].tolist(), order[other].tolist()
    return [(str(i), str(j)) for i, j in zip(a, b, strict=True) if i != j]


def _cold_recall(codebook: ItemCodebook, users: Tensor, truth: list[set[int]], pool: int) -> float:
    """Of each cold user's exact top-100 items that are cold, the share the candidates hold."""
    recalls = []
    for user, want in zip(users, truth, strict=True):
        if want:
            found = codebook.candidates(TENANT, {CONTENT: user[None]}, K, pool=pool)
            recalls.append(len({int(i) for i in found} & want) / len(want))
    return round(statistics.fmean(recalls), 4) if recalls else 0.0


def run_synthetic(
    n: int, n_users: int, pool: int, console: Console, seed: int = 0
) -> dict[str, Any]:
    g = Generator().manual_seed(seed)
    x, sub, warm = synthetic_items(n, g)
    ids = [str(i) for i in range(n)]
    config = CodebookConfig.sized(n, pool=pool)
    codebook = ItemCodebook(config)
    console.print(f"synthetic: {n:,} items, fitting on {warm:,} (K={config.codebook_size}) ...")
    started = time.perf_counter()
    pairs = _pairs(sub[:warm], 0, min(200_000, 4 * warm), g)
    codebook.fit(TENANT, {CONTENT: ItemVectors(ids[:warm], x[:warm])}, pairs)
    fit_s = time.perf_counter() - started
    new_topics = torch.unique(sub[warm:][sub[warm:] >= int((1 - NEW) * TOPICS * SUBTOPICS)])
    cold_users = _users(x, sub, new_topics[: max(1, n_users // 4)], g)
    cold_truth = [{r for r in top if r >= warm} for top in exact_truth(x, cold_users).top]
    rebuild_only = _cold_recall(codebook, cold_users, cold_truth, pool)
    console.print(f"assigning {n - warm:,} cold items in real time ...")
    latency = []
    for row in range(warm, n):
        started = time.perf_counter()
        codebook.assign(TENANT, ids[row], {CONTENT: x[row]})
        latency.append(time.perf_counter() - started)
    realtime = _cold_recall(codebook, cold_users, cold_truth, pool)
    present = torch.unique(sub)  # a small catalogue leaves some sub-topics without items
    users = _users(x, sub, present[torch.randint(0, len(present), (n_users,), generator=g)], g)
    console.print(f"exact search for {n_users} users ...")
    truth = exact_truth(x, users)
    queries = [{CONTENT: u[None]} for u in users]
    rows = {i: r for r, i in enumerate(ids)}
    sweep = [
        code_recall(codebook, TENANT, queries, truth.top, rows, p) for p in sorted({*POOLS, pool})
    ]
    console.print("LanceDB IVF_PQ on the same vectors ...")
    ivf = ivf_pq(x, users, truth.top)
    (stats,) = codebook.stats(TENANT)
    console.print(f"refresh: fine-tune on the newest half, max churn {MAX_CHURN} ...")
    started = time.perf_counter()
    report = codebook.refresh(
        TENANT, _pairs(sub, n // 2, min(100_000, 2 * n), g), max_churn=MAX_CHURN
    )
    refresh_s = time.perf_counter() - started
    after = code_recall(codebook, TENANT, queries, truth.top, rows, pool)
    cold_after = _cold_recall(codebook, cold_users, cold_truth, pool)
    return summary(
        items=n, warm=warm, config=config, fit_s=fit_s, truth=truth, sweep=sweep, pool=pool,
        ivf=ivf, stats=stats, report=report, refresh_s=refresh_s, recall_after=after,
        cold={"cold_recall_at_100": realtime, "cold_recall_at_100_rebuild_only": rebuild_only,
              "cold_recall_at_100_after_refresh": cold_after, "cold_users": len(cold_users),
              "cold_items": n - warm},
        assign_ms={"p50": 1000 * percentile(latency, 0.5), "p99": 1000 * percentile(latency, 0.99)},
        extra={"generator": {"dim": DIM, "latent_dim": LATENT, "topics": TOPICS,
                             "subtopics_per_topic": SUBTOPICS, "cold_fraction": COLD,
                             "noise_energy": NOISE**2 / (1 + NOISE**2), "new_subtopics": NEW}},
    )  # fmt: skip


def run_codebook_bench(
    items: int,
    console: Console,
    users: int = 200,
    pool: int = 1000,
    movielens: bool = True,
    freshness_probes: int = 20,
) -> dict[str, Any]:
    """Synthetic first (its figures are also the top-level ones), then ML-1M, then freshness
    through the broker, the worker and the HTTP server (``freshness_probes`` items; 0: skip)."""
    torch.set_num_threads(1)
    results: dict[str, Any] = {"k": K, "users": users, "pool": pool, "torch_threads": 1,
                               "machine_cpus": os.cpu_count()}  # fmt: skip
    results["synthetic"] = run_synthetic(items, users, pool, console)
    for key in ("recall_at_100", "speedup_vs_exact", "speedup_vs_exact_batched", "churn",
                "cold_recall_at_100"):  # fmt: skip
        results[key] = results["synthetic"][key]
    results["ivf_pq_recall_at_100"] = results["synthetic"]["ivf_pq"]["recall_at_100"]
    results["ivf_pq_speedup_vs_exact"] = results["synthetic"]["ivf_pq"]["speedup_vs_exact"]
    if movielens:
        results["ml1m"] = run_movielens(users, pool, console)
    if freshness_probes > 0:
        results["freshness"] = run_freshness(freshness_probes, console)
        results["freshness_p99_s"] = results["freshness"]["freshness_p99_s"]
    _print(console, results)
    return results


def _print(console: Console, results: dict[str, Any]) -> None:
    table = Table(title=f"bench codebook (k={K}, pool={results['pool']})")
    for column in ("data", "items", "method", "recall@100", "ms/query", "speedup", "batched x"):
        table.add_column(column, justify="left" if column in ("data", "method") else "right")
    for name in ("synthetic", "ml1m"):
        part = results.get(name)
        if part is None:
            continue
        exact, ivf = part["exact"], part["ivf_pq"]
        rows = [("exact", 1.0, exact["single_ms"], 1.0, 1.0),
                ("codebook", part["recall_at_100"], part["codebook_single_ms"],
                 part["speedup_vs_exact"], part["speedup_vs_exact_batched"]),
                ("ivf_pq", ivf["recall_at_100"], ivf["single_ms"], ivf["speedup_vs_exact"],
                 ivf["speedup_vs_exact_batched"])]  # fmt: skip
        for method, recall, ms, speedup, batched in rows:
            table.add_row(name, f"{part['items']:,}", method, f"{recall:.3f}", f"{ms:.2f}",
                          f"{speedup:.1f}", f"{batched:.1f}")  # fmt: skip
        table.add_row(name, "", f"churn {part['churn']:.3f} (wanted {part['churn_wanted']:.3f})",
                      f"cold {part['cold_recall_at_100']:.3f}", "", "", "")  # fmt: skip
    console.print(table)
