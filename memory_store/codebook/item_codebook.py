"""``ItemCodebook``: the learned item index (MFLI) as the worker and the reader use it.

``fit`` trains a tenant's model and builds its index; ``assign`` files a new item
under its codes at once, with no retraining; ``candidates`` reads the code buckets
nearest the query vectors, no ANN search, and re-scores the pool exactly;
``refresh`` fine-tunes a copy of the model, moves at most ``max_churn`` of the
items and swaps the serving state by replacing one reference. Items assigned
while a refresh runs are replayed onto the new state before the swap.

With a ``CodebookStore``: ``fit``/``refresh`` save index and model, ``assign`` queues
rows that ``flush`` writes in one commit, and a reader process follows them by ``sync``.
"""

from __future__ import annotations

import copy
import threading
import time
from collections import deque
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import torch
from torch import Tensor

from memory_store.codebook.index import Address, Path
from memory_store.codebook.item2vec import ItemVectors
from memory_store.codebook.model import FacetSpec, MultiFacetIndexModel
from memory_store.codebook.refresh import RefreshReport, plan_facets
from memory_store.codebook.store import CodebookStore
from memory_store.codebook.tenant_state import (
    CodebookConfig,
    ServingState,
    build_state,
    ranked_buckets,
    score,
)
from memory_store.codebook.train import TrainReport
from memory_store.codebook.upkeep import (
    FacetStats,
    Pending,
    UnknownFacetError,
    UnknownTenantError,
    apply_rows,
    check_facets,
    checked_rows,
    facet_stats,
    pending_rows,
    restored_state,
    train_aligned,
)

__all__ = ["FacetStats", "ItemCodebook", "RefreshReport", "UnknownFacetError", "UnknownTenantError"]

_SYNC_OVERLAP_S = 5.0  # writers' clocks and commit delays: re-read this much behind


@dataclass
class _Tenant:
    state: ServingState
    watermark: float = 0.0  # newest stored row seen: ``sync`` reads from here
    lock: threading.Lock = field(default_factory=threading.Lock)
    journal: list[tuple[str, str]] | None = None  # (facet, item) assigned during a refresh
    pending: list[Pending] = field(default_factory=list)
    latency: deque[float] = field(default_factory=lambda: deque(maxlen=4096))
    churn: dict[str, float] = field(default_factory=dict)


class ItemCodebook:
    """Per-tenant models and code indexes; safe to share between threads."""

    def __init__(self, config: CodebookConfig | None = None, store: CodebookStore | None = None):
        self.config = config or CodebookConfig()
        self.store = store
        self._tenants: dict[str, _Tenant] = {}
        self._load_lock = threading.Lock()

    def _tenant(self, tenant: str) -> _Tenant:
        found = self._tenants.get(tenant)
        if found is None and not self.load(tenant):
            raise UnknownTenantError(tenant)
        return found or self._tenants[tenant]

    def load(self, tenant: str) -> bool:
        """Serve the tenant's newest saved model and index; False if the store has none.

        Rows of another model version (a refresh cut short, a racing writer) are
        re-encoded from their stored vectors and queued for ``flush``.
        """
        with self._load_lock:
            stored = None if self.store is None else self.store.load_model(tenant)
            if self.store is None or stored is None:
                return False
            model, cap = stored.model, int(stored.extra.get("leaf_cap", self.config.leaf_cap))
            saved = self.store.load_index(
                tenant, stored.version, levels=model.levels, codebook_size=model.codebook_size,
                leaf_cap=cap,
            )  # fmt: skip
            entry = _Tenant(restored_state(model, stored.version, saved), saved.assigned_at)
            for facet, stale in saved.stale.items():
                if facet in model.specs and stale.items:
                    self._place(tenant, entry, facet, stale.items, stale.vectors)
            self._tenants[tenant] = entry
            return True

    def sync(self) -> int:
        """Follow the worker's writes (call it every second or so in a reader process): reload a
        tenant whose saved model is newer, else index rows written since the last look."""
        applied = 0
        for tenant, entry in list(self._tenants.items()):
            if self.store is None:
                break
            if (self.store.latest_version(tenant) or 0) > entry.state.version:
                self.load(tenant)
                continue
            rows = self.store.read_rows(tenant, since=entry.watermark - _SYNC_OVERLAP_S)
            with entry.lock:
                applied += apply_rows(tenant, entry.state, rows)
                entry.watermark = max([entry.watermark, *(r.assigned_at for r in rows.values())])
        return applied

    def fit(
        self,
        tenant: str,
        items_vectors: Mapping[str, ItemVectors[str]],
        co_engaged_pairs: Iterable[tuple[str, str]] = (),
    ) -> TrainReport:
        """Train a new model on these items (facet -> vectors) and pairs, index it, serve it."""
        cfg = self.config
        specs = [FacetSpec(f, v.vectors.shape[1], cfg.hidden) for f, v in items_vectors.items()]
        model = MultiFacetIndexModel(
            specs, code_dim=cfg.code_dim, levels=cfg.levels, codebook_size=cfg.codebook_size,
            seed=cfg.seed,
        )  # fmt: skip
        report = train_aligned(model, items_vectors, co_engaged_pairs, cfg.train)
        entry = self._tenants.get(tenant)
        version = 1 if entry is None else entry.state.version + 1
        state = build_state(tenant, version, model, items_vectors, cfg.leaf_cap)
        if entry is None:
            self._tenants[tenant] = _Tenant(state)
        else:
            with entry.lock:  # one reference replaced: a reader sees the old state or the new
                entry.state, entry.pending = state, []
        self._save(tenant, state)
        return report

    def persist(self, tenant: str) -> None:
        """Save the tenant's served model and codes to ``store`` (a fit made without one)."""
        self._save(tenant, self._tenant(tenant).state)

    def _save(self, tenant: str, state: ServingState) -> None:
        if self.store is not None:  # codes first, model row last: the model is the commit point
            snapshot = {f: v.snapshot() for f, v in state.vectors.items()}
            self.store.save_index(tenant, state.version, state.index, snapshot)
            self.store.save_model(tenant, state.version, state.model, leaf_cap=self.config.leaf_cap)

    def _place(
        self, tenant: str, entry: _Tenant, facet: str, items: Sequence[str], vectors: Tensor
    ) -> dict[str, Address]:
        """Encode and index items under the current codebook; caller holds the lock."""
        state = entry.state
        state.vectors[facet].put(items, vectors)
        placed = state.index.assign(tenant, facet, items, vectors)
        for item, vector in zip(items, vectors, strict=True):
            seq = state.next_seq[facet]
            state.next_seq[facet] = seq + 1
            if self.store is not None:
                entry.pending.append((state.version, facet, item, placed[item], seq, vector))
            if entry.journal is not None:
                entry.journal.append((facet, item))
        return placed

    def assign(
        self, tenant: str, item_id: str, vectors: Mapping[str, Sequence[float] | Tensor]
    ) -> dict[str, Address]:
        """File a new (or changed) item under its codes in every facet it has a vector for.

        Real time: O(L x K x code_dim) per facet, no retraining; the item is returned
        by ``candidates`` as soon as this returns.
        """
        started = time.perf_counter()
        entry = self._tenant(tenant)
        rows = checked_rows(entry.state.model, vectors)
        placed: dict[str, Address] = {}
        with entry.lock:
            for facet, row in rows.items():
                placed[facet] = self._place(tenant, entry, facet, [item_id], row)[item_id]
            entry.latency.append(time.perf_counter() - started)
        return placed

    def facet_dims(self, tenant: str) -> dict[str, int]:
        """Each facet's input width: what query vectors must have."""
        return {f: s.in_dim for f, s in self._tenant(tenant).state.model.specs.items()}

    def item_vectors(self, tenant: str, facet: str, item_ids: Sequence[str]) -> dict[str, Tensor]:
        """The facet input vectors of those items the index holds (unknown ids left out)."""
        entry = self._tenant(tenant)
        check_facets(entry.state.model, [facet])
        with entry.lock:
            positions, x = entry.state.vectors[facet].rows(item_ids)
        return {item_ids[p]: x[n] for n, p in enumerate(positions.tolist())}

    def candidates(
        self,
        tenant: str,
        queries: Mapping[str, Tensor],
        k: int,
        facets: Collection[str] | None = None,
        *,
        pool: int | None = None,
        beam: int | None = None,
        weights: Mapping[str, Tensor] | None = None,
        exclude: Collection[str] = (),
    ) -> list[str]:
        """Up to ``k`` item ids for query vectors ``[m, dim]`` per facet, best first.

        Buckets are read nearest first (leaves, then shorter prefixes) across the
        facets until ``pool`` items (default ``config.pool``), which are ranked by
        the best weighted cosine to any query row. ``pool <= k`` skips the re-score.
        Only this tenant's index is read.
        """
        if k <= 0:
            return []
        entry = self._tenant(tenant)
        state = entry.state  # one read: a concurrent refresh swaps it whole
        specs = state.model.specs
        check_facets(state.model, facets or ())
        chosen = {
            f: q.reshape(-1, specs[f].in_dim).to(torch.float32)
            for f, q in queries.items()
            if f in specs and (facets is None or f in facets) and q.numel()
        }
        if not chosen:
            return []
        size = max(k, self.config.pool if pool is None else pool)
        buckets = ranked_buckets(state.model, chosen, beam or self.config.beam)
        with entry.lock:
            found = state.index.gather(tenant, buckets, size + len(exclude))
            if exclude:
                banned = frozenset(exclude)
                found = [i for i in found if i not in banned][:size]
            rows = {f: state.vectors[f].rows(found) for f in chosen} if size > k else {}
        if size <= k:
            return found
        ones = {f: torch.ones(q.shape[0]) for f, q in chosen.items()}
        scores = score(len(found), rows, chosen, {**ones, **(weights or {})})
        order = torch.argsort(-scores, stable=True)[:k]
        return [found[i] for i in order[scores[order] > -float("inf")].tolist()]

    def refresh(
        self,
        tenant: str,
        co_engaged_pairs: Iterable[tuple[str, str]] = (),
        items_vectors: Mapping[str, ItemVectors[str]] | None = None,
        *,
        max_churn: float | None = None,
    ) -> RefreshReport:
        """Fine-tune a copy of the model on recent pairs, re-plan paths with bounded churn, swap.

        ``items_vectors`` is the catalogue after the refresh (default: the items
        indexed now); items it leaves out are dropped.
        """
        cfg = self.config
        entry = self._tenant(tenant)
        with entry.lock:
            old = entry.state
            items = items_vectors or {f: v.snapshot() for f, v in old.vectors.items()}
            old_paths = {f: old.index.paths(tenant, f) for f in items}
            entry.journal = []
        try:
            model = copy.deepcopy(old.model)
            report = train_aligned(model, items, co_engaged_pairs, cfg.refresh_train,
                                   cfg.refresh_decay)  # fmt: skip
            bound = cfg.max_churn if max_churn is None else max_churn
            plans = plan_facets(model, items, old_paths, max_churn=bound, margin=cfg.margin)
            paths = {f: plan.paths for f, plan in plans.items()}
            state = build_state(tenant, old.version + 1, model, items, cfg.leaf_cap, paths)
            with entry.lock:
                journal, entry.journal = entry.journal or [], None
                replay = {(f, i): old.vectors[f].rows([i])[1] for f, i in journal}
                # Queued rows of the old version: the index saved below supersedes them.
                entry.state, entry.pending = state, []
                for (facet, item), x in replay.items():
                    self._place(tenant, entry, facet, [item], x)
                entry.churn = {f: plan.churn for f, plan in plans.items()}
        finally:
            entry.journal = None
        self._save(tenant, state)
        return RefreshReport.of(state.version, plans, old_paths, len(replay), report)

    def flush(self) -> int:
        """Write the rows queued by real-time assignments, one batch per tenant; rows written."""
        written = 0
        for tenant, entry in list(self._tenants.items()):
            with entry.lock:
                pending, entry.pending = entry.pending, []
            if self.store is not None and pending:
                written += self.store.save_codes(tenant, pending_rows(pending))
        return written

    def version(self, tenant: str) -> int:
        """The served model's version (a first fit is 1; each refit adds one)."""
        return self._tenant(tenant).state.version

    def prefixes(
        self, tenant: str, facet: str, item_ids: Iterable[str], depth: int
    ) -> dict[str, Path]:
        """Each indexed item's code path cut to ``depth`` codes (none if the facet is not
        served): the co-engagement cluster a code-path belief is keyed by."""
        entry = self._tenant(tenant)
        state = entry.state
        if facet not in state.model.specs or depth < 1:
            return {}
        out: dict[str, Path] = {}
        with entry.lock:
            for item in item_ids:
                address = state.index.address(tenant, facet, item)
                if address is not None:
                    out[item] = address.path[:depth]
        return out

    def members(self, tenant: str, facet: str, prefix: Path, n: int) -> list[str]:
        """Up to ``n`` items under ``prefix``, most typical first (a fit files the items
        nearest their code first)."""
        entry = self._tenant(tenant)
        with entry.lock:
            return entry.state.index.items_at(tenant, facet, prefix)[:n]

    def stats(self, tenant: str) -> list[FacetStats]:
        """Per facet, for metrics; utilisation is O(items), so scrape it every few seconds."""
        entry = self._tenant(tenant)
        with entry.lock:
            return facet_stats(tenant, entry.state, sorted(entry.latency), entry.churn)
