"""A tenant's first item-codebook fit, computed beside the writer rather than in its way.

Embedding a catalogue runs at ~300 items/s with MiniLM here, so a first fit done inline
held the writer process (every event batch behind it) for minutes on a large catalogue.
The writer still reads the fit's inputs (catalogue, engagement) and writes its outputs
(codes, model) itself, so LanceDB keeps one writing thread; only the compute in between
(embedding, item2vec, training, building the index) runs in a daemon thread, which dies
with the process. The catalogue is embedded in slices, so the writer's own embedding
calls (the embedder serialises them) wait for one slice at most. Items that arrive for
the tenant while its fit runs are remembered and filed once the model is installed.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

from memory_store.candidates import COLLAB, CONTENT, co_engaged_pairs, content_vectors
from memory_store.events import Item
from memory_store.operations.extraction import Embedder

if TYPE_CHECKING:
    from memory_store.codebook.item2vec import ItemVectors
    from memory_store.codebook.item_codebook import ItemCodebook
    from streams.settings import CodebookSettings

__all__ = ["COLLAB_COVERAGE", "BackgroundFits", "FitInput", "Fitted", "fit_codebook"]

# The collaborative facet joins a first fit only if item2vec covers this share of the
# catalogue: training aligns the facets on the items both know, so a thin collab facet
# would leave the content codebook trained on a handful of items.
COLLAB_COVERAGE = 0.5
# Items embedded per embedder call during a fit (~1 s here).
SLICE = 256


@dataclass(frozen=True, slots=True)
class FitInput:
    """What the writer read for one tenant's fit, and when (its clock, wall time)."""

    tenant: str
    catalogue: list[Item]
    sequences: list[list[str]]
    shape: CodebookSettings  # model sizes and training length
    started: tuple[float, float]


@dataclass(slots=True)
class Fitted:
    """A fit that finished (or failed), and the item ids that arrived while it ran."""

    job: FitInput
    result: Future[ItemCodebook]
    arrived: set[str] = field(default_factory=set)


def fit_codebook(job: FitInput, embed: Embedder, stop: threading.Event) -> ItemCodebook:
    """The tenant's first model, not yet saved: content over the whole catalogue, plus the
    collab facet (item2vec over positive engagement) when it covers enough of it."""
    import torch

    from memory_store.codebook.item2vec import Item2VecConfig, ItemVectors, train_item2vec
    from memory_store.codebook.item_codebook import ItemCodebook
    from memory_store.codebook.tenant_state import CodebookConfig

    parts: list[ItemVectors[str]] = []
    for start in range(0, len(job.catalogue), SLICE):
        if stop.is_set():
            raise RuntimeError("stopped before the fit finished")
        parts.append(content_vectors(embed, job.catalogue[start : start + SLICE]))
    content = ItemVectors([i for p in parts for i in p.items],
                          torch.cat([p.vectors for p in parts]))  # fmt: skip
    facets = {CONTENT: content}
    known = content.index()
    collab = train_item2vec(job.sequences, Item2VecConfig(dim=job.shape.collab_dim, window=2,
                                                          epochs=2))  # fmt: skip
    rows = [n for n, item in enumerate(collab.items) if item in known]
    if len(rows) >= max(2, COLLAB_COVERAGE * len(job.catalogue)):
        facets[COLLAB] = ItemVectors([collab.items[n] for n in rows], collab.vectors[rows])
    config = CodebookConfig.sized(len(job.catalogue), code_dim=job.shape.code_dim)
    # A batch larger than the catalogue only repeats items: 8x the time for 48 items.
    batch = min(config.train.batch_size, max(64, len(job.catalogue)))
    config = replace(
        config,
        train=replace(config.train, steps=job.shape.fit_steps, batch_size=batch),
        refresh_train=replace(config.refresh_train, batch_size=batch),
    )
    book = ItemCodebook(config)  # no store: the writer saves it on its own thread
    book.fit(job.tenant, facets, co_engaged_pairs(job.sequences, window=3))
    return book


class BackgroundFits:
    """First fits running in daemon threads, one tenant at a time each."""

    def __init__(self, embed: Embedder) -> None:
        self._embed = embed
        self._running: dict[str, Fitted] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()

    def start(self, job: FitInput) -> None:
        fitted = Fitted(job, Future())
        with self._lock:
            self._running[job.tenant] = fitted
        threading.Thread(target=self._run, args=(fitted,), daemon=True,
                         name=f"codebook-fit-{job.tenant}").start()  # fmt: skip

    def _run(self, fitted: Fitted) -> None:
        try:
            fitted.result.set_result(fit_codebook(fitted.job, self._embed, self._stop))
        except BaseException as exc:  # handed to the writer, which reports it
            fitted.result.set_exception(exc)

    def running(self, tenant: str) -> bool:
        with self._lock:
            return tenant in self._running

    def tenants(self) -> list[str]:
        """Tenants whose fit is running or finished but not yet installed."""
        with self._lock:
            return sorted(self._running)

    def note_arrivals(self, tenant: str, item_ids: Sequence[str]) -> None:
        """Items the tenant's running fit did not read: filed when its model is installed."""
        with self._lock:
            if tenant in self._running:
                self._running[tenant].arrived.update(item_ids)

    def finished(self) -> list[Fitted]:
        """Fits that are done (successfully or not), no longer running."""
        with self._lock:
            done = [f for f in self._running.values() if f.result.done()]
            for fitted in done:
                del self._running[fitted.job.tenant]
        return done

    def wait(self, timeout_s: float | None = None) -> None:
        """Until every running fit is done (for tests and orderly hand-overs)."""
        with self._lock:
            futures = [f.result for f in self._running.values()]
        for future in futures:
            future.exception(timeout_s)

    def stop(self) -> None:
        """Make running fits give up at their next slice."""
        self._stop.set()
