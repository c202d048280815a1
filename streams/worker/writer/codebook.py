"""The item codebook inside the memory writer process: new items indexed at once, a tenant's
first model fitted once it has enough data, and a scheduled refresh.

Why in the writer child: embedding (MiniLM) and training (torch) block for milliseconds to
seconds and must never run on the Faust loop; and the child is already the single writer
of LanceDB, so code rows, the catalogue and their compactions never race. Why a module of
its own: ``streams/worker/writer/child.py`` only hands batches over, the policy lives here.

Per items batch, after the catalogue write: every item is embedded (the same text the
content facet is fitted on, ``memory_store.candidates.content_text``) and assigned under
its tenant's current codes, and the rows are flushed before the batch is acknowledged,
so a reader that syncs sees it (``ItemCodebook.sync``). A tenant without a model yet has
its items counted as unindexed; the upkeep timer fits it from the whole catalogue plus
item2vec over the event tier once it has ``min_items`` items and ``min_events`` events
(computed in a background thread, ``streams.worker.writer.codebook_fit``; saved and served by the
writer's thread as soon as it finishes, the worker looking every second), and after that
refreshes it every ``refresh_s`` on the events stored since, with churn bounded by
``max_churn``. Torch is imported only here, and only in the child.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

from memory_store.candidates import COLLAB, CONTENT, co_engaged_pairs, content_vectors
from memory_store.code_paths import NAMING_TITLES, Topics, code_key, code_topic
from memory_store.events import Item
from memory_store.lance.catalogue import ItemCatalogue
from memory_store.lance.codebook_sources import CodebookSources
from memory_store.operations.extraction import Embedder
from streams.settings import CodebookSettings
from streams.worker.writer.codebook_fit import BackgroundFits, FitInput

if TYPE_CHECKING:
    from memory_store.codebook.item_codebook import ItemCodebook
    from memory_store.codebook.store import CodebookStore

__all__ = ["FacetFigures", "IndexOutcome", "UpkeepOutcome", "WorkerCodebook"]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class IndexOutcome:
    """One items batch: items assigned codes, items left unindexed (no model yet, or a bad
    vector), and each assignment's time (codes only: the batch is embedded in one call)."""

    indexed: int = 0
    unindexed: int = 0
    assign_seconds: list[float] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class FacetFigures:
    """``ItemCodebook.stats`` of one tenant and facet, as plain numbers for the metrics."""

    tenant: str
    facet: str
    version: int
    items: int
    utilisation: float
    leaf_p50: int
    leaf_p99: int
    leaf_max: int
    churn: float | None  # fraction of items moved at the last refresh


@dataclass(frozen=True, slots=True)
class UpkeepOutcome:
    fitted: list[str] = field(default_factory=list)  # installed: the fit finished since
    started: list[str] = field(default_factory=list)  # first fits started in the background
    running: list[str] = field(default_factory=list)  # first fits still running
    refreshed: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)  # tenant -> error, retried next time
    facets: list[FacetFigures] = field(default_factory=list)
    seconds: float = 0.0


class WorkerCodebook:
    """One ``ItemCodebook`` per tenant (each sized to its catalogue), over one store."""

    def __init__(
        self,
        uri: str,
        catalogue: ItemCatalogue,
        embed: Embedder,
        params: CodebookSettings,
        clock: Callable[[], float] = time.time,
    ) -> None:
        import torch

        from memory_store.codebook.store import CodebookStore

        # One torch thread in the writer child (it runs one task at a time): on 2 shared cores
        # two threads contend with the worker and each other. Measured here: a first fit of 48
        # items took 37 s on two threads, 18 s on one; one item's embedding 0.2-0.5 s vs ~20 ms.
        torch.set_num_threads(1)
        self.params, self._catalogue, self._embed, self._clock = params, catalogue, embed, clock
        self.store: CodebookStore = CodebookStore(uri)
        self.sources = CodebookSources(uri)
        self._books: dict[str, ItemCodebook] = {}
        self._tenants: set[str] | None = None  # catalogue tenants, scanned at the first upkeep
        # tenant -> (clock, wall time) of its last fit or refresh: the clock says when the next
        # refresh is due, the wall time which events it reads (their ``ingested_at``).
        self._updated: dict[str, tuple[float, float]] = {}
        self._assigned: dict[str, int] = {}  # tenant -> items assigned since then
        # (tenant, model version, code prefix) -> the cluster's readable name
        self._names: dict[tuple[str, int, tuple[int, ...]], str] = {}
        self.fits = BackgroundFits(embed)

    def _book(self, tenant: str) -> ItemCodebook | None:
        """The tenant's codebook, loaded from the store if another run fitted it; else None."""
        from memory_store.codebook.item_codebook import ItemCodebook
        from memory_store.codebook.tenant_state import CodebookConfig

        book = self._books.get(tenant)
        if book is None and self.fits.running(tenant):
            return None  # its model comes with the fit, installed by upkeep or install_fits
        if book is None:
            book = ItemCodebook(CodebookConfig(code_dim=self.params.code_dim), self.store)
            if not book.load(tenant):
                return None
            self._books[tenant] = book
            self._updated.setdefault(tenant, self._now())
        return book

    def code_topics(self, tenant: str, item_ids: Collection[str]) -> dict[str, Topics]:
        """Each item's code-path topic under the tenant's served model: the key of its
        collaborative prefix and the prefix's most typical titles (cached per model version).
        Nothing for a tenant without a model (loaded by upkeep) or without a collab facet."""
        book, depth = self._books.get(tenant), self.params.belief_depth
        if book is None or depth < 1:
            return {}
        version = book.version(tenant)
        prefixes = book.prefixes(tenant, COLLAB, item_ids, depth)
        unnamed = {p for p in prefixes.values() if (tenant, version, p) not in self._names}
        if unnamed:
            typical = {p: book.members(tenant, COLLAB, p, NAMING_TITLES) for p in unnamed}
            wanted = {i for ids in typical.values() for i in ids}
            titles = self._catalogue.read_items(tenant, wanted)
            for prefix, ids in typical.items():
                named = code_topic(titles[i].title for i in ids if i in titles)
                self._names[(tenant, version, prefix)] = named
        return {
            item: ((code_key(COLLAB, prefix), self._names[(tenant, version, prefix)]),)
            for item, prefix in prefixes.items()
        }

    def index_items(self, items: Sequence[Item]) -> IndexOutcome:
        """Assign codes to a batch's items (their newest catalogue version) and flush."""
        by_tenant: dict[str, list[str]] = {}
        for item in items:
            by_tenant.setdefault(item.tenant, []).append(item.item_id)
        parts = [self._index(tenant, ids) for tenant, ids in by_tenant.items()]
        return IndexOutcome(sum(p.indexed for p in parts), sum(p.unindexed for p in parts),
                            [s for p in parts for s in p.assign_seconds])  # fmt: skip

    def _index(self, tenant: str, ids: list[str]) -> IndexOutcome:
        if self._tenants is not None:
            self._tenants.add(tenant)
        wanted = len(dict.fromkeys(ids))
        newest = self._catalogue.read_items(tenant, ids)
        book = self._book(tenant)
        if book is None or not newest:
            self.fits.note_arrivals(tenant, ids)
            return IndexOutcome(0, wanted)
        indexed, latency = 0, []
        vectors = content_vectors(self._embed, list(newest.values()))
        for item_id, vector in zip(vectors.items, vectors.vectors, strict=True):
            started = time.perf_counter()
            try:
                book.assign(tenant, item_id, {CONTENT: vector})
            except ValueError as exc:  # e.g. a model fitted with another embedder
                log.warning("item %r of %r not indexed: %s", item_id, tenant, exc)
                continue
            latency.append(time.perf_counter() - started)
            indexed += 1
        self._assigned[tenant] = self._assigned.get(tenant, 0) + indexed
        book.flush()
        return IndexOutcome(indexed, wanted - indexed, latency)  # not in the catalogue: none

    def upkeep(self) -> UpkeepOutcome:
        """Fit tenants that became ready, refresh those due, and report every facet's stats."""
        started = time.perf_counter()
        if self._tenants is None:
            self._tenants = self.sources.tenants() | set(self._books)
        outcome = UpkeepOutcome()
        self._install_finished(outcome)
        for tenant in sorted(self._tenants):
            if self.fits.running(tenant) or tenant in outcome.fitted:
                continue
            try:
                book = self._book(tenant)
                if book is None and self._ready(tenant):
                    self.fits.start(self._fit_input(tenant))
                    outcome.started.append(tenant)
                elif book is not None and self._due(tenant) and self.refresh(tenant, book):
                    outcome.refreshed.append(tenant)
            except Exception as exc:  # one tenant's failure must not stop the others
                log.exception("item codebook upkeep failed for tenant %r", tenant)
                outcome.failed[tenant] = repr(exc)
                continue
            if book is not None:
                outcome.facets.extend(self._figures(book, tenant))
        return replace(outcome, running=self.fits.tenants(), seconds=time.perf_counter() - started)

    def install_fits(self) -> UpkeepOutcome:
        """Only install the first fits that finished (cheap: call it often while they run)."""
        started = time.perf_counter()
        outcome = UpkeepOutcome()
        self._install_finished(outcome)
        return replace(outcome, running=self.fits.tenants(), seconds=time.perf_counter() - started)

    def _ready(self, tenant: str) -> bool:
        p = self.params
        return (
            self.sources.count_items(tenant) >= p.min_items
            and self.sources.count_events(tenant) >= p.min_events
        )

    def _due(self, tenant: str) -> bool:
        return self._clock() - self._updated.get(tenant, (0.0, 0.0))[0] >= self.params.refresh_s

    def _now(self) -> tuple[float, float]:
        return self._clock(), time.time()

    def _fit_input(self, tenant: str) -> FitInput:
        """What a first fit reads (on this thread: LanceDB stays single-threaded here)."""
        p = self.params
        return FitInput(
            tenant,
            self.sources.items(tenant),
            list(self.sources.engagement(tenant, max_events=p.max_events).values()),
            p,
            self._now(),
        )

    def _install_finished(self, outcome: UpkeepOutcome) -> None:
        """Save and serve each finished fit, then file the items that arrived during it."""
        for done in self.fits.finished():
            tenant = done.job.tenant
            try:
                book = done.result.result()
                book.store = self.store
                book.persist(tenant)
            except Exception as exc:  # retried at a later upkeep: the tenant has no model
                log.error("item codebook fit failed for tenant %r: %r", tenant, exc)
                outcome.failed[tenant] = repr(exc)
                continue
            self._books[tenant], self._updated[tenant] = book, done.job.started
            self._assigned[tenant] = 0
            if done.arrived:
                self._index(tenant, sorted(done.arrived))
            outcome.fitted.append(tenant)
            outcome.facets.extend(self._figures(book, tenant))
            log.info("item codebook fitted for %r: %d items, facets %s", tenant,
                     len(done.job.catalogue), book.facet_dims(tenant))  # fmt: skip

    def refresh(self, tenant: str, book: ItemCodebook) -> bool:
        """Fine-tune on the events stored since the last update; False if nothing is new."""
        since, now = self._updated.get(tenant, (0.0, 0.0))[1], self._now()
        book.sync()  # rows other workers assigned, or a model they saved
        sequences = self.sources.engagement(tenant, since=since, max_events=self.params.max_events)
        pairs = co_engaged_pairs(sequences.values(), window=3)
        if not pairs and not self._assigned.get(tenant):
            self._updated[tenant] = now
            return False
        book.refresh(tenant, pairs, max_churn=self.params.max_churn)
        self._updated[tenant], self._assigned[tenant] = now, 0
        return True

    def _figures(self, book: ItemCodebook, tenant: str) -> list[FacetFigures]:
        return [
            FacetFigures(
                s.tenant,
                s.facet,
                s.version,
                s.items,
                s.utilisation,
                s.leaves.p50,
                s.leaves.p99,
                s.leaves.max,
                s.last_churn,
            )
            for s in book.stats(tenant)
        ]

    def compact(self) -> None:
        """Merge the code and model tables' fragments (see ``CodebookStore.compact``)."""
        self.store.compact()
