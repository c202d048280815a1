"""Refreshing item paths after retraining, with bounded churn.

A retrained codebook would move many items to new paths; every move invalidates
caches and stored addresses downstream, and most moves buy little. So an item
moves only when its new path reconstructs it better than its old one by more
than ``margin`` (both measured under the new codebook), and at most
``floor(max_churn x n)`` of the ``n`` items present before and after may move —
the largest gains first. The bound is enforced by that count, so it holds
whatever the model proposes. New items always take their proposed path.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from memory_store.codebook.index import CodeIndex, Path, as_paths
from memory_store.codebook.item2vec import ItemVectors
from memory_store.codebook.model import MultiFacetIndexModel
from memory_store.codebook.train import TrainReport

__all__ = [
    "RefreshPlan",
    "RefreshReport",
    "apply_refresh",
    "bounded_moves",
    "churn",
    "plan_facets",
    "plan_refresh",
]


@dataclass(frozen=True)
class RefreshPlan:
    paths: dict[str, Path]  # every item's path after the refresh
    moved: list[str]  # existing items whose path changed
    wanted: int  # existing items that cleared the margin (moved ≤ wanted)
    churn: float  # len(moved) / items present before and after


@dataclass(frozen=True)
class RefreshReport:
    """What a refresh did, per facet: the bounded churn and what it would have been unbounded."""

    version: int
    churn: dict[str, float]  # items whose path changed / items present before and after
    wanted: dict[str, float]  # items that would have moved without the bound, same base
    replayed: int  # real-time assignments replayed onto the new index before the swap
    train: TrainReport

    @staticmethod
    def of(
        version: int,
        plans: Mapping[str, RefreshPlan],
        old_paths: Mapping[str, Mapping[str, Path]],
        replayed: int,
        train: TrainReport,
    ) -> RefreshReport:
        common = {f: len(old_paths[f].keys() & plan.paths.keys()) for f, plan in plans.items()}
        wanted = {f: plan.wanted / max(common[f], 1) for f, plan in plans.items()}
        return RefreshReport(
            version, {f: p.churn for f, p in plans.items()}, wanted, replayed, train
        )


def churn(old_paths: Mapping[str, Path], new_paths: Mapping[str, Path]) -> float:
    """Fraction of the items present in both whose path changed (0.0 when none in common)."""
    common = old_paths.keys() & new_paths.keys()
    if not common:
        return 0.0
    return sum(old_paths[i] != new_paths[i] for i in common) / len(common)


def bounded_moves(
    old_paths: Mapping[str, Path],
    proposed: Mapping[str, Path],
    gain: Mapping[str, float],
    *,
    max_churn: float,
    margin: float = 0.0,
) -> RefreshPlan:
    """Keep old paths except for the best-gaining movers, at most ``max_churn`` of them."""
    if not 0.0 <= max_churn <= 1.0:
        raise ValueError("max_churn must be in [0, 1]")
    common = [i for i in proposed if i in old_paths]
    wanting = [i for i in common if proposed[i] != old_paths[i] and gain.get(i, -math.inf) > margin]
    budget = math.floor(max_churn * len(common))
    moved = sorted(wanting, key=lambda i: (-gain[i], i))[:budget]
    moving = set(moved)
    paths = {
        i: (old_paths[i] if i in old_paths and i not in moving else p) for i, p in proposed.items()
    }
    rate = len(moved) / len(common) if common else 0.0
    return RefreshPlan(paths, moved, len(wanting), rate)


def plan_refresh(
    model: MultiFacetIndexModel,
    facet: str,
    items: Sequence[str],
    vectors: Tensor,
    old_paths: Mapping[str, Path],
    *,
    max_churn: float,
    margin: float = 0.0,
) -> RefreshPlan:
    """Re-encode ``items`` with the (retrained) model; gain = old path error - new path error."""
    proposed = dict(zip(items, as_paths(model.encode(facet, vectors)), strict=True))
    rows = [r for r, item in enumerate(items) if item in old_paths]
    gain: dict[str, float] = {}
    if rows:
        x = vectors[rows]
        old = torch.tensor([old_paths[items[r]] for r in rows], dtype=torch.long)
        new = torch.tensor([proposed[items[r]] for r in rows], dtype=torch.long)
        delta = model.path_error(facet, x, old) - model.path_error(facet, x, new)
        gain = {items[r]: float(d) for r, d in zip(rows, delta.tolist(), strict=True)}
    return bounded_moves(old_paths, proposed, gain, max_churn=max_churn, margin=margin)


def plan_facets(
    model: MultiFacetIndexModel,
    items: Mapping[str, ItemVectors[str]],
    old_paths: Mapping[str, Mapping[str, Path]],
    *,
    max_churn: float,
    margin: float = 0.0,
) -> dict[str, RefreshPlan]:
    """``plan_refresh`` for every facet, each bounded on its own."""
    return {
        facet: plan_refresh(
            model,
            facet,
            source.items,
            source.vectors,
            old_paths.get(facet, {}),
            max_churn=max_churn,
            margin=margin,
        )
        for facet, source in items.items()
    }


def apply_refresh(index: CodeIndex, tenant: str, facet: str, plan: RefreshPlan) -> None:
    """Move the planned items, add new ones, drop items the refresh no longer lists."""
    gone = set(index.paths(tenant, facet)) - plan.paths.keys()
    index.remove(tenant, gone, facet=facet)
    index.insert(tenant, facet, plan.paths)
