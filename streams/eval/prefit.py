"""The item codebook the tiered workers serve during an evaluation, fitted once at the cut.

A worker fits a tenant's first codebook when its upkeep timer finds enough items and
events, and refreshes it every ``refresh_s`` of wall time; during a replay that would
make which events were read under which codes (the code-path beliefs) depend on the
replay's pace and the machine. The evaluation instead fits the model once on what is
known at the cut, as a worker's first fit does (``fit_codebook``: the catalogue at the
cut, item2vec over the training split's positive engagement), saves it into each tiered
run's store before its worker starts, and runs the worker without refreshes, so every
event of the replay is read under the same codes and the memory is a function of the
split. A team replaying its own history can do the same with ``beliefstream`` and a
fitted store.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from memory_store.events import EventType, Item
from memory_store.lance.codebook_sources import POSITIVE_TYPES
from memory_store.operations.extraction import Embedder
from streams.settings import CodebookSettings
from streams.worker.writer.codebook_fit import FitInput, fit_codebook

if TYPE_CHECKING:
    from memory_store.codebook.item_codebook import ItemCodebook

__all__ = ["NO_REFRESH_S", "fit_at_cut", "install", "positive_sequences"]

# A refresh interval no evaluation reaches: the codes stay those fitted at the cut.
NO_REFRESH_S = 1e12


def positive_sequences(train: Sequence[Mapping[str, Any]]) -> dict[str, list[str]]:
    """Per user, the items they engaged with positively, oldest first: what a worker's fit
    reads from its event tier (``CodebookSources.engagement``), here from the split."""
    out: dict[str, list[str]] = {}
    for row in sorted(train, key=lambda r: float(r["ts"])):  # stable: stream order kept
        kind, value = str(row["type"]), row.get("value")
        rated = kind == EventType.RATE.value and value is not None and float(value) > 3.0
        if kind in POSITIVE_TYPES or rated:
            out.setdefault(str(row["user_id"]), []).append(str(row["item_id"]))
    return dict(sorted(out.items()))


def fit_at_cut(
    tenant: str,
    items_at_cut: Sequence[Mapping[str, Any]],
    train: Sequence[Mapping[str, Any]],
    embed: Embedder,
    shape: CodebookSettings,
) -> ItemCodebook:
    """The tenant's codebook as a worker's first fit would make it from the whole split."""
    catalogue = [Item.model_validate({**row, "tenant": tenant}) for row in items_at_cut]
    sequences = list(positive_sequences(train).values())
    job = FitInput(tenant, catalogue, sequences, shape, (0.0, 0.0))
    return fit_codebook(job, embed, threading.Event())


def install(book: ItemCodebook, tenant: str, lancedb_uri: str) -> None:
    """Save the fitted model and codes into a run's store (before its worker starts)."""
    from memory_store.codebook.store import CodebookStore

    book.store = CodebookStore(lancedb_uri)
    book.persist(tenant)
