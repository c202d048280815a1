"""The reference memory-based scorer: one formula for every memory variant.

Items are embedded once per run with the same MiniLM the memory uses for its
chunks and profiles, as ``item_text`` (what the reader embeds an item as:
"Title. Genre, Genre, 1990s") with the release year added to the title, i.e.
title + genres + year (+ the decade the memory's era facet reads).

A user's memory is a set of (unit vector, signed strength) pairs plus an
optional profile vector, and an item's score is

    score(item) = sum_c sign_c * strength_c * cos(item, c) + w * cos(item, profile)

where sign is +1 for a liking and -1 for a disliking. The tiered variants fill
it from the memory the worker maintained (preference chunks with their decayed
strength, and the profile). ``flat`` and ``recent`` fill it from raw training
events: each event is a pseudo-chunk whose vector is its item's and whose signed
strength is ``evidence_weight`` (a rating r reads as (r - 3) / 2), with no
profile. Because every vector is unit length the sum is linear: the score of
all items is one matrix-vector product with the user's query vector.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from memory_store.events import Interaction, Item
from memory_store.operations.extraction import Embedder
from memory_store.reader_views import item_text
from memory_store.signals import evidence_weight

__all__ = [
    "ItemSpace",
    "MemoryVectors",
    "eval_item_text",
    "event_memory",
    "memory_scores",
    "unit_rows",
]

Matrix = npt.NDArray[np.float32]


def unit_rows(matrix: npt.ArrayLike) -> Matrix:
    """Rows scaled to unit length; all-zero rows stay zero (they then score nothing)."""
    arr = np.atleast_2d(np.asarray(matrix, dtype=np.float32))
    norms = np.linalg.norm(arr, axis=1, keepdims=True)
    out: Matrix = np.divide(arr, norms, out=np.zeros_like(arr), where=norms > 0)
    return out


def eval_item_text(row: Mapping[str, Any]) -> str:
    """The text an item is embedded as: ``item_text`` with the year after the title."""
    item = Item.model_validate(row)
    year = item.attributes.get("year")
    title = f"{item.title} ({year})" if isinstance(year, int) else item.title
    return item_text(item.model_copy(update={"title": title}))


@dataclass(frozen=True)
class ItemSpace:
    """The catalogue as rows of unit item vectors, in a fixed order."""

    item_ids: tuple[str, ...]
    vectors: Matrix

    def __post_init__(self) -> None:
        if self.vectors.shape[0] != len(self.item_ids):
            raise ValueError("one vector per item id")

    @property
    def index(self) -> dict[str, int]:
        return {item: n for n, item in enumerate(self.item_ids)}

    @staticmethod
    def embed(items: Sequence[Mapping[str, Any]], embed: Embedder) -> ItemSpace:
        """Embed every catalogue row (once per run: MiniLM does ~300 texts/s here)."""
        ids = tuple(str(r["item_id"]) for r in items)
        if len(set(ids)) != len(ids):
            raise ValueError("duplicate item ids in the catalogue")
        vectors = embed([eval_item_text(r) for r in items]) if items else []
        return ItemSpace(
            ids, unit_rows(np.asarray(vectors, dtype=np.float32).reshape(len(ids), -1))
        )


@dataclass(frozen=True)
class MemoryVectors:
    """One user's memory as the scorer reads it."""

    vectors: Matrix  # (m, d) unit rows: chunk embeddings or item vectors
    weights: npt.NDArray[np.float64]  # (m,) sign * strength
    profile: Matrix | None = None  # (d,) unit profile embedding

    @staticmethod
    def empty(dim: int) -> MemoryVectors:
        return MemoryVectors(np.zeros((0, dim), np.float32), np.zeros(0))

    def query(self, profile_weight: float) -> npt.NDArray[np.float64]:
        """The one vector whose dot product with an item vector is the item's score."""
        dim = self.vectors.shape[1]
        q = self.weights.astype(np.float64) @ self.vectors.astype(np.float64)
        q = np.asarray(q, dtype=np.float64).reshape(dim)
        if self.profile is not None and profile_weight:
            q = q + profile_weight * self.profile.astype(np.float64)
        return q


def memory_scores(
    space: ItemSpace, memory: MemoryVectors, profile_weight: float
) -> npt.NDArray[np.float64]:
    """``score(item)`` for every item of ``space`` (see the module docstring)."""
    return np.asarray(space.vectors.astype(np.float64) @ memory.query(profile_weight))


def event_memory(
    events: Iterable[Mapping[str, Any]], space: ItemSpace, index: Mapping[str, int] | None = None
) -> MemoryVectors:
    """Raw events as pseudo-chunks: the item's vector, signed by ``evidence_weight``.

    Events whose item is not in ``space`` or whose weight is 0 (a 3-star rating)
    contribute nothing, as they teach the tiered memory nothing either.
    """
    lookup = space.index if index is None else index
    rows: list[int] = []
    weights: list[float] = []
    for row in events:
        n = lookup.get(str(row["item_id"]))
        if n is None:
            continue
        weight = evidence_weight(Interaction.model_validate(row))
        if weight:
            rows.append(n)
            weights.append(weight)
    if not rows:
        return MemoryVectors.empty(space.vectors.shape[1])
    return MemoryVectors(space.vectors[rows], np.asarray(weights, dtype=np.float64))
