"""Ablations of the reference scorer: which part of the formula carries each memory variant.

The headline figures use the whole formula for every memory variant. To read
them, the same memories are re-ranked with one part switched off at a time;
that is cheap (the memories are already read, no worker runs again) and tells
whether a difference between variants comes from what their memory holds
(chunks and profile: the content term; evidence events: the collaborative and
EASE terms) or from a term they share (popularity). ``with_codebook_pool`` adds
the codebook's candidates ranked first, which the headline leaves out;
``content_only`` is the earliest scorer: chunk/profile similarity alone.

``belief_family_ablations`` does the same per belief family (a chunk's facet:
genre, era): the whole formula without that family's chunks, and the family's
chunks alone in the content term (no profile, no events).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from streams.eval.collab import CollabPool
from streams.eval.scorer import MemoryVectors, ReferenceScorer
from streams.eval.split import TimeSplit
from streams.eval.variants import memory_scores_fn, rank_variant

__all__ = ["ABLATIONS", "ablations", "belief_family_ablations"]

# name -> (component weights overriding the config's, whether the codebook pool is used)
ABLATIONS: dict[str, tuple[dict[str, float], bool]] = {
    "with_codebook_pool": ({}, True),
    "without_popularity": ({"popularity": 0.0}, False),
    "content_only": ({"content": 1.0, "collab": 0.0, "popularity": 0.0, "ease": 0.0}, False),
    "collab_only": ({"content": 0.0, "collab": 1.0, "popularity": 0.0, "ease": 0.0}, False),
    "without_ease": ({"ease": 0.0}, False),
    "ease_only": ({"content": 0.0, "collab": 0.0, "popularity": 0.0, "ease": 1.0}, False),
}


def ablations(
    name: str,
    scorer: ReferenceScorer,
    memories: Mapping[str, MemoryVectors],
    split: TimeSplit,
    pool: CollabPool | None,
) -> dict[str, dict[str, Any]]:
    """HR@10, NDCG@10 and mean rank pct of each ablation of this variant's memories."""
    out: dict[str, dict[str, Any]] = {}
    for label, (weights, use_pool) in ABLATIONS.items():
        score = memory_scores_fn(name, scorer, memories, split, pool, weights, use_pool)
        m = rank_variant(score, split, scorer.space, split.known_items).metrics
        out[label] = {"hr_at_10": m.hr_at_10, "ndcg_at_10": m.ndcg_at_10,
                      "mean_rank_pct": m.mean_rank_pct}  # fmt: skip
    return out


def belief_family_ablations(
    name: str,
    scorer: ReferenceScorer,
    memories: Mapping[str, MemoryVectors],
    split: TimeSplit,
    pool: CollabPool | None,
) -> dict[str, dict[str, Any]]:
    """Per belief family: its chunk count, and NDCG@10 / HR@10 without it and of it alone."""
    families = sorted({f for m in memories.values() for f in m.facets})
    alone_weights = ABLATIONS["content_only"][0]
    out: dict[str, dict[str, Any]] = {}
    for family in families:
        others = [f for f in families if f != family]
        without = {u: m.keep_facets(others, True) for u, m in memories.items()}
        alone = {u: m.keep_facets([family], False) for u, m in memories.items()}
        figures: dict[str, Any] = {"chunks": sum(m.facets.count(family) for m in memories.values())}
        for label, kept, weights in (("without", without, None), ("alone", alone, alone_weights)):
            score = memory_scores_fn(name, scorer, kept, split, pool, weights, False)
            m = rank_variant(score, split, scorer.space, split.known_items).metrics
            figures[label] = {"hr_at_10": m.hr_at_10, "ndcg_at_10": m.ndcg_at_10}
        out[family] = figures
    return out
