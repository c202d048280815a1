"""One user's memory as the reader caches it: built once per load, read by every query."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from memory_store.rating_norm import is_norm
from memory_store.reader_views import EventView, Vector, check_owners, unit_vector
from memory_store.store import UserKey
from memory_store.tiers import PreferenceChunk, Profile, UserSnapshot

__all__ = ["Entry", "build_entry"]

log = logging.getLogger("memory_store.reader")


@dataclass(frozen=True, slots=True)
class Entry:
    """One user's cached memory; ``matrix`` rows are unit chunk embeddings (chunk_id order)."""

    version: int
    chunks: tuple[PreferenceChunk, ...]
    profile: Profile | None
    events: tuple[EventView, ...]
    matrix: Vector
    strength: npt.NDArray[np.float64]
    last_seen: npt.NDArray[np.float64]
    # False for chunks that do not decay (the rating norm).
    decays: npt.NDArray[np.bool_]
    # The user's own newest event time: "now" when decaying in event time.
    event_now: float


def build_entry(
    key: UserKey, snap: UserSnapshot, version: int, dim: int, event_limit: int
) -> Entry:
    """The entry of ``snap`` (refused when it belongs to another user), newest events first."""
    check_owners(key, snap)
    matrix = np.zeros((len(snap.chunks), dim), dtype=np.float32)
    for row, chunk in enumerate(snap.chunks):
        try:
            matrix[row] = unit_vector(chunk.embedding, dim, f"chunk {chunk.chunk_id}")
        except ValueError as exc:  # a chunk embedded by another model never matches
            log.warning("unusable chunk embedding: %s", exc)
    newest = snap.events[::-1]  # a snapshot keeps its events oldest first, in stream order
    return Entry(
        version=version,
        chunks=snap.chunks,
        profile=snap.profile,
        events=tuple(EventView.of(e) for e in newest[:event_limit]),
        matrix=matrix,
        strength=np.array([c.strength for c in snap.chunks], dtype=np.float64),
        last_seen=np.array([c.last_seen for c in snap.chunks], dtype=np.float64),
        decays=np.array([not is_norm(c) for c in snap.chunks], dtype=np.bool_),
        event_now=max(
            [e.ts for e in snap.events] + [c.last_seen for c in snap.chunks], default=0.0
        ),
    )
