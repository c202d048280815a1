"""ML-1M for ``bench codebook``: the movies as MiniLM content vectors (title, genres, year)
and item2vec collab vectors, split in time at 80 % of the ratings.

The codebook is fitted on the movies rated before the split, with co-engagement
pairs of users' liked (>= 4) movies. A user's vector per facet is the mean of
their last 20 liked movies before the split. Recall@100 is against the exact
top-100 of those vectors; cold recall is engagement: of the movies first rated
after the split that a user then liked, the share among their 100 candidates
(their own earlier movies left out), once before the cold movies are assigned
(a rebuild at the start only: they are not indexed) and once after each was
embedded and assigned in real time. Exact search over the content vectors of all
movies gives the ceiling.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from rich.console import Console
from torch import Tensor

from memory_store.candidates import COLLAB, CONTENT, co_engaged_pairs, content_text, content_vectors
from memory_store.codebook.item2vec import Item2VecConfig, ItemVectors, train_item2vec
from memory_store.codebook.item_codebook import ItemCodebook
from memory_store.codebook.tenant_state import CodebookConfig
from memory_store.embedding import MiniLMEmbedder
from streams.bench._codebook_parts import (
    MAX_CHURN,
    K,
    code_recall,
    exact_truth,
    ivf_pq,
    load_movielens,
    percentile,
    summary,
)

__all__ = ["run_movielens"]

TENANT = "ml-1m"
_LAST = 20  # liked movies that make a user's vector
_POOLS = (100, 300, 1000)


def _user_vector(source: ItemVectors[str], rows: Mapping[str, int], liked: Sequence[str]) -> Tensor:
    picks = [rows[i] for i in liked if i in rows][-_LAST:]
    if not picks:
        return torch.zeros(source.vectors.shape[1])
    return F.normalize(source.vectors[picks].mean(0), dim=-1)


def _engagement(
    codebook: ItemCodebook,
    queries: Sequence[dict[str, Tensor]],
    wanted: Sequence[set[str]],
    seen: Sequence[list[str]],
    pool: int,
) -> float:
    hits = [
        len(set(codebook.candidates(TENANT, q, K, pool=pool, exclude=s)) & w) / len(w)
        for q, w, s in zip(queries, wanted, seen, strict=True)
    ]
    return round(statistics.fmean(hits), 4) if hits else 0.0


def run_movielens(n_users: int, pool: int, console: Console) -> dict[str, Any]:
    console.print("ml-1m: loading ratings and embedding the movies with MiniLM ...")
    ml = load_movielens(TENANT)
    embed = MiniLMEmbedder()
    started = time.perf_counter()
    content = content_vectors(embed, list(ml.items.values()))
    embed_s = time.perf_counter() - started
    crow = content.index()
    warm, cold = ml.warm, set(ml.cold)
    warm_content = ItemVectors(warm, content.vectors[[crow[i] for i in warm]])
    collab = train_item2vec(list(ml.train.values()), Item2VecConfig(dim=32, window=2, epochs=2))
    facets = {CONTENT: warm_content, COLLAB: collab}
    config = CodebookConfig.sized(len(warm), code_dim=32, pool=pool)
    codebook = ItemCodebook(config)
    started = time.perf_counter()
    codebook.fit(TENANT, facets, co_engaged_pairs(ml.train.values(), window=3))
    fit_s = time.perf_counter() - started
    users = sorted(u for u in ml.test if u in ml.train)[:n_users]
    per_facet: dict[str, Any] = {}
    for facet, source in facets.items():
        rows = source.index()
        vectors = torch.stack([_user_vector(source, rows, ml.train[u]) for u in users])
        truth = exact_truth(source.vectors, vectors)
        queries = [{facet: v[None]} for v in vectors]
        sweep = [code_recall(codebook, TENANT, queries, truth.top, rows, p)
                 for p in sorted({*_POOLS, pool})]  # fmt: skip
        per_facet[facet] = (truth, sweep, ivf_pq(source.vectors, vectors, truth.top), queries, rows)

    cold_users = sorted(u for u in ml.test if u in ml.train and cold & set(ml.test[u]))
    liked_cold = [cold & set(ml.test[u]) for u in cold_users]
    seen = [ml.train[u] for u in cold_users]
    both = [
        {f: _user_vector(facets[f], facets[f].index(), ml.train[u])[None] for f in facets}
        for u in cold_users
    ]
    rebuild_only = _engagement(codebook, both, liked_cold, seen, pool)
    console.print(f"ml-1m: embedding and assigning {len(cold)} cold movies one at a time ...")
    latency = []
    for item_id in sorted(cold, key=lambda i: ml.first_seen[i]):
        started = time.perf_counter()
        vector = embed([content_text(ml.items[item_id])])[0]
        codebook.assign(TENANT, item_id, {CONTENT: torch.tensor(vector)})
        latency.append(time.perf_counter() - started)
    realtime = _engagement(codebook, both, liked_cold, seen, pool)
    stats = codebook.stats(TENANT)[0]  # the content facet, cold movies included
    everything = content.vectors
    hide = [[crow[i] for i in s] for s in seen]
    ceiling = exact_truth(everything, torch.cat([q[CONTENT] for q in both]), hide=hide).top
    exact_hits = [
        len({content.items[r] for r in top} & want) / len(want)
        for top, want in zip(ceiling, liked_cold, strict=True)
    ]

    console.print("ml-1m: refresh after fine-tuning on the test period's pairs ...")
    started = time.perf_counter()
    report = codebook.refresh(
        TENANT, co_engaged_pairs(ml.test.values(), window=3), max_churn=MAX_CHURN
    )
    refresh_s = time.perf_counter() - started
    truth, sweep, ivf, queries, rows = per_facet[CONTENT]
    after = code_recall(codebook, TENANT, queries, truth.top, rows, pool)
    cold_figures = {
        "cold_recall_at_100_after_refresh": _engagement(codebook, both, liked_cold, seen, pool),
        "cold_recall_at_100": realtime,
        "cold_recall_at_100_rebuild_only": rebuild_only,
        "cold_recall_at_100_exact_content": round(statistics.fmean(exact_hits), 4),
        "cold_users": len(cold_users),
        "cold_items": len(cold),
    }
    collab_truth, collab_sweep, collab_ivf, _, _ = per_facet[COLLAB]
    collab_main = next(row for row in collab_sweep if row["pool"] == pool)
    collab_speedup = collab_truth.single_ms / collab_main["single_ms"]
    return summary(
        items=len(ml.items), warm=len(warm), config=config, fit_s=fit_s, truth=truth,
        sweep=sweep, pool=pool, ivf=ivf, stats=stats, report=report, refresh_s=refresh_s,
        recall_after=after, cold=cold_figures,
        assign_ms={"p50": 1000 * percentile(latency, 0.5), "p99": 1000 * percentile(latency, 0.99)},
        extra={
            "users": len(users), "embed_items_s": round(embed_s, 2),
            "assign_includes": "MiniLM embedding of the movie's text + code assignment",
            "collab": {"recall_at_100": collab_main["recall_at_100"], "pool_sweep": collab_sweep,
                       "speedup_vs_exact": round(collab_speedup, 2),
                       "ivf_pq_recall_at_100": collab_ivf["recall_at_100"],
                       "items": len(collab.items)},
        },
    )  # fmt: skip
