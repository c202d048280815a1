"""Upkeep around a tenant's serving state: training on aligned facets, rebuilding a state
from saved rows, following rows another process wrote, the rows a flush writes, and stats.

Split from ``tenant_state`` so the read path stays small; all of it runs off the hot path.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from memory_store.codebook.index import Address, LeafStats
from memory_store.codebook.item2vec import ItemVectors
from memory_store.codebook.model import MultiFacetIndexModel
from memory_store.codebook.quantizer import EMAQuantizer
from memory_store.codebook.residual import utilisation
from memory_store.codebook.store import CodeRows, StoredIndex
from memory_store.codebook.tenant_state import FacetVectors, ServingState
from memory_store.codebook.train import TrainConfig, TrainReport, train

__all__ = [
    "FacetStats",
    "Pending",
    "UnknownFacetError",
    "UnknownTenantError",
    "apply_rows",
    "check_facets",
    "checked_rows",
    "facet_stats",
    "pending_rows",
    "restored_state",
    "train_aligned",
]


class UnknownTenantError(LookupError):
    """The tenant has no fitted codebook (in memory or in the store)."""

    def __init__(self, tenant: str) -> None:
        super().__init__(f"no item codebook for tenant {tenant!r}: fit or load it first")


class UnknownFacetError(ValueError):
    """A facet this tenant's codebook does not have (the facets are the codebook's own)."""


def check_facets(model: MultiFacetIndexModel, facets: Iterable[str]) -> None:
    unknown = sorted(set(facets) - set(model.specs))
    if unknown:
        raise UnknownFacetError(f"unknown facet(s) {unknown}; this codebook has {model.facets}")


def checked_rows(
    model: MultiFacetIndexModel, vectors: Mapping[str, Sequence[float] | Tensor]
) -> dict[str, Tensor]:
    """One ``[1, in_dim]`` row per facet, or ValueError saying what is wrong."""
    check_facets(model, vectors)
    rows: dict[str, Tensor] = {}
    for facet, vector in vectors.items():
        row = torch.as_tensor(vector, dtype=torch.float32).reshape(1, -1)
        if row.shape[1] != model.specs[facet].in_dim or not bool(torch.isfinite(row).all()):
            raise ValueError(f"{facet} vector must be {model.specs[facet].in_dim} finite numbers")
        rows[facet] = row
    return rows


def restored_state(model: MultiFacetIndexModel, version: int, saved: StoredIndex) -> ServingState:
    """The serving state of a saved index (its ``stale`` rows are the caller's to re-encode)."""
    saved.index.encoder = model
    vectors = {f: FacetVectors(spec.in_dim) for f, spec in model.specs.items()}
    for facet, rows in saved.rows.items():
        if facet in vectors:
            vectors[facet].put(rows.items, rows.vectors)
    next_seq = {f: saved.next_seq.get(f, 0) for f in model.specs}
    return ServingState(version, model, saved.index, vectors, next_seq)


def apply_rows(tenant: str, state: ServingState, rows: Mapping[str, CodeRows]) -> int:
    """Index rows another process wrote: paths of this model version as they are, others
    re-encoded from their vectors. Idempotent (an unchanged path is not moved); caller locks."""
    applied = 0
    for facet, part in rows.items():
        if facet not in state.vectors or not part.items:
            continue
        state.vectors[facet].put(part.items, part.vectors)
        same = part.versions == state.version
        mine = part.take(same)
        state.index.insert(
            tenant, facet, dict(zip(mine.items, map(tuple, mine.paths.tolist()), strict=True))
        )
        other = part.take(~same)
        if other.items:
            state.index.assign(tenant, facet, other.items, other.vectors)
        state.next_seq[facet] = max(state.next_seq[facet], int(part.seq.max()) + 1)
        applied += len(part.items)
    return applied


def _pairs(rows: Mapping[str, int], pairs: Iterable[tuple[str, str]]) -> Tensor | None:
    index = [(rows[a], rows[b]) for a, b in pairs if a in rows and b in rows]
    return torch.tensor(index, dtype=torch.long) if index else None


def train_aligned(
    model: MultiFacetIndexModel,
    items: Mapping[str, ItemVectors[str]],
    pairs: Iterable[tuple[str, str]],
    config: TrainConfig,
    ema_decay: float | None = None,
) -> TrainReport:
    """Train on the items every facet knows (rows aligned across facets); ``ema_decay``
    overrides the codebooks' (a refresh follows the data slowly)."""
    lookup = {facet: source.index() for facet, source in items.items()}
    first = next(iter(items.values()))
    common = [i for i in first.items if all(i in rows for rows in lookup.values())]
    if not common:
        raise ValueError("no item has a vector in every facet: nothing to train on")
    features = {f: items[f].vectors[[lookup[f][i] for i in common]] for f in items}
    rows = {item: n for n, item in enumerate(common)}
    for facet in model.facets if ema_decay is not None else ():
        for layer in model.quantizer(facet).layers:
            if isinstance(layer, EMAQuantizer) and ema_decay is not None:
                layer.decay = ema_decay
    return train(model, features, _pairs(rows, pairs), config)


@dataclass(frozen=True)
class FacetStats:
    tenant: str
    facet: str
    version: int
    items: int
    utilisation: float  # used (level, code) pairs / L x K
    leaves: LeafStats
    last_churn: float | None  # fraction of items moved at the last refresh
    assign_p50_ms: float | None
    assign_p99_ms: float | None


def facet_stats(
    tenant: str, state: ServingState, latency: Sequence[float], churn: Mapping[str, float]
) -> list[FacetStats]:
    """Items, utilisation, leaf sizes, last churn and assignment latency, per facet."""

    def pct(q: float) -> float | None:
        return 1000 * latency[min(len(latency) - 1, int(q * len(latency)))] if latency else None

    out = []
    for facet in state.model.facets:
        paths = list(state.index.paths(tenant, facet).values())
        used = utilisation(torch.tensor(paths), state.model.codebook_size) if paths else 0.0
        leaves = state.index.leaf_stats(tenant, facet)
        out.append(FacetStats(tenant, facet, state.version, len(paths), used, leaves,
                              churn.get(facet), pct(0.5), pct(0.99)))  # fmt: skip
    return out


# A real-time row awaiting ``flush``: (version, facet, item, address, seq, vector).
Pending = tuple[int, str, str, Address, int, Tensor]


def pending_rows(pending: Sequence[Pending]) -> list[CodeRows]:
    """Queued real-time rows as one ``CodeRows`` per (version, facet)."""
    groups: dict[tuple[int, str], list[Pending]] = {}
    for row in pending:
        groups.setdefault((row[0], row[1]), []).append(row)
    return [
        CodeRows(
            facet,
            [r[2] for r in rows],
            torch.tensor([r[3].path for r in rows], dtype=torch.long),
            torch.tensor([r[3].slot for r in rows], dtype=torch.long),
            torch.tensor([r[4] for r in rows], dtype=torch.long),
            torch.stack([r[5].reshape(-1) for r in rows]),
            torch.full((len(rows),), version, dtype=torch.long),
        )
        for (version, facet), rows in groups.items()
    ]
