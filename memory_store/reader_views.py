"""What the ranker read API returns, and the pure helpers it is computed with.

The values are plain frozen dataclasses, free of storage and numpy types, kept
apart from the reader so the HTTP layer (and any other caller) can build its
responses from them without the cache machinery.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from memory_store.events import Interaction, Item
from memory_store.signals import item_facets
from memory_store.tiers import PreferenceChunk, Profile, UserSnapshot

__all__ = [
    "NO_VERSION",
    "ChunkView",
    "EventView",
    "ProfileView",
    "ReaderStats",
    "ScoredChunk",
    "UnknownItemError",
    "UserMemoryView",
    "Vector",
    "check_k",
    "check_owners",
    "item_text",
    "unit_vector",
]

# The version of memory loaded before any change notice about its user was heard.
NO_VERSION = -1

Vector = npt.NDArray[np.float32]


def unit_vector(vector: npt.ArrayLike, dim: int, what: str) -> Vector:
    """``vector`` scaled to unit length, or ValueError saying what is wrong with it."""
    arr = np.asarray(vector, dtype=np.float64)
    if arr.ndim != 1:
        raise ValueError(f"{what} must be a flat list of numbers, not of shape {arr.shape}")
    if arr.shape[0] != dim:
        raise ValueError(f"{what} has {arr.shape[0]} dimensions; the embedding dimension is {dim}")
    if not np.isfinite(arr).all():
        raise ValueError(f"{what} must be finite and non-zero")
    scale = float(np.abs(arr).max(initial=0.0))  # scaled first: 1e200 squared overflows
    if scale == 0.0:
        raise ValueError(f"{what} must be finite and non-zero")
    arr = arr / scale
    return (arr / np.linalg.norm(arr)).astype(np.float32)


def item_text(item: Item) -> str:
    """What an item is embedded as for retrieval: "Title. Genre, Genre, 1990s"."""
    fragments = [fragment for _, _, fragment in item_facets(item)]
    return f"{item.title}. {', '.join(fragments)}" if fragments else item.title


def check_k(k: int) -> None:
    """ValueError unless ``k`` (how many chunks to return) is a non-negative int."""
    if isinstance(k, bool) or not isinstance(k, int) or k < 0:
        raise ValueError(f"k must be a non-negative integer, not {k!r}")


def check_owners(key: tuple[str, str], snap: UserSnapshot) -> None:
    """RuntimeError if a snapshot holds memory of another tenant or user than ``key``."""
    owners = {(snap.tenant, snap.user_id)}
    owners.update((c.tenant, c.user_id) for c in snap.chunks)
    owners.update((e.tenant, e.user_id) for e in snap.events)
    if snap.profile is not None:
        owners.add((snap.profile.tenant, snap.profile.user_id))
    if owners != {key}:
        raise RuntimeError(f"store returned memory of another tenant or user for {key}")


class UnknownItemError(ValueError):
    """Retrieval by item ids named items the tenant's catalogue does not hold."""

    def __init__(self, tenant: str, item_ids: Sequence[str]) -> None:
        self.tenant = tenant
        self.item_ids = tuple(item_ids)
        shown = ", ".join(repr(i) for i in self.item_ids[:10])
        more = f" (+{len(self.item_ids) - 10} more)" if len(self.item_ids) > 10 else ""
        super().__init__(f"unknown item id(s) for tenant {tenant!r}: {shown}{more}")


@dataclass(frozen=True, slots=True)
class ProfileView:
    """The profile narrative and how many chunk versions it was built from."""

    narrative: str
    version: int
    built_at: float
    sources: int

    @staticmethod
    def of(profile: Profile) -> ProfileView:
        return ProfileView(
            profile.narrative, profile.version, profile.built_at, len(profile.sources)
        )


@dataclass(frozen=True, slots=True)
class ChunkView:
    """One belief as a ranker sees it: ``strength`` is decayed to the time of the read.

    ``key`` names the belief the same way for every user of a tenant ("comedy" in the
    genre facet), so a learned ranker can embed (facet, key) as a category.
    """

    chunk_id: str
    facet: str
    key: str
    text: str
    polarity: str
    strength: float
    evidence_count: int
    last_seen: float

    @staticmethod
    def of(chunk: PreferenceChunk, strength: float) -> ChunkView:
        return ChunkView(
            chunk.chunk_id,
            chunk.facet,
            chunk.key,
            chunk.text,
            chunk.polarity.value,
            strength,
            chunk.evidence_count,
            chunk.last_seen,
        )


@dataclass(frozen=True, slots=True)
class EventView:
    """One recent interaction, without its free text or context."""

    event_id: str
    item_id: str
    type: str
    value: float | None
    ts: float

    @staticmethod
    def of(event: Interaction) -> EventView:
        return EventView(event.event_id, event.item_id, event.type.value, event.value, event.ts)


@dataclass(frozen=True, slots=True)
class UserMemoryView:
    """A user's memory at ``version``: profile, strongest beliefs, newest events first."""

    tenant: str
    user_id: str
    version: int
    profile: ProfileView | None
    chunks: tuple[ChunkView, ...]
    chunk_count: int
    events: tuple[EventView, ...]


@dataclass(frozen=True, slots=True)
class ScoredChunk:
    """A belief ranked for a query: ``score`` = ``similarity`` (cosine) x decayed ``strength``."""

    chunk_id: str
    facet: str
    key: str
    text: str
    polarity: str
    strength: float
    similarity: float
    score: float
    evidence_count: int
    last_seen: float

    @staticmethod
    def of(chunk: PreferenceChunk, strength: float, similarity: float) -> ScoredChunk:
        return ScoredChunk(
            chunk.chunk_id,
            chunk.facet,
            chunk.key,
            chunk.text,
            chunk.polarity.value,
            strength,
            similarity,
            similarity * strength,
            chunk.evidence_count,
            chunk.last_seen,
        )


@dataclass(frozen=True, slots=True)
class ReaderStats:
    """Cache counters since the reader started, for metrics."""

    hits: int
    misses: int
    invalidations: int
    size: int
    query_hits: int
    query_misses: int
