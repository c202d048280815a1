"""Reading a worker's memory the way a ranker does, as the scorer's input.

Each user is read **as of their target's time** (a point-in-time read): the
chunks, profile and events as they stood when the held-out interaction
happened, strengths decayed to that time, with no later round, expiry or
forgetting in them. A ranker asking at the target time would have seen just
that; reading after the whole replay instead showed idle users' memories
years later (see ``retention``). The strengths, polarities and the set of
chunks come from ``MemoryReader`` (the ranker API,
``get_user_memories_as_of``); the read view carries no vectors, so the chunk
and profile embeddings are taken from the same point in time of the store by
chunk id. Both reads are bulk, per 500 users.
The view's recent events (the reader's default window, newest first) are the
memory's evidence, weighted as the worker weighs them (``evidence_weight``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from memory_store.events import Interaction
from memory_store.lance.catalogue import open_catalogue
from memory_store.lance.store import open_store
from memory_store.operations.extraction import Embedder
from memory_store.rating_norm import NORM_FACET
from memory_store.reader import MemoryReader
from memory_store.reader_views import EventView
from memory_store.signals import evidence_weight
from streams.eval.scorer import MemoryVectors, unit_rows

__all__ = [
    "READER_EVENTS",
    "MemoryStats",
    "MemoryTokens",
    "memory_after_replay",
    "read_event_sequences",
    "read_memory_tokens",
    "read_tiered_memory",
]

_SLICE = 500
# The reader's window of recent events (its default), the memory's evidence.
READER_EVENTS = 50
_ALL_CHUNKS = 1_000_000


@dataclass(frozen=True)
class MemoryStats:
    """What the evaluated users' memories held."""

    users: int
    users_without_chunks: int
    users_with_profile: int
    chunks: int
    dislike_chunks: int
    evidence_events: int = 0
    # How the beliefs' strengths (decayed, as read) spread: saturated beliefs cannot be ordered.
    strength_median: float = 0.0
    share_at_least_0_9: float = 0.0
    share_at_least_0_99: float = 0.0


def read_tiered_memory(
    uri: str,
    tenant: str,
    users: Sequence[str],
    embed: Embedder,
    dim: int,
    as_of: Mapping[str, float],
) -> tuple[dict[str, MemoryVectors], MemoryStats]:
    """Each user's chunks (decayed strength, polarity) and profile at ``as_of[user]``."""
    store = open_store(uri)
    reader = MemoryReader(
        store,
        open_catalogue(uri),
        embed,
        cache_users=0,
        event_limit=READER_EVENTS,
        dimension=dim,
    )
    out: dict[str, MemoryVectors] = {}
    empty = with_profile = chunks = dislikes = events = 0
    strengths: list[float] = []
    for start in range(0, len(users), _SLICE):
        part = list(users[start : start + _SLICE])
        reads = [(u, as_of[u]) for u in part]
        snapshots = store.read_snapshots_as_of([((tenant, u), t) for u, t in reads], 0)
        views = reader.get_user_memories_as_of(tenant, reads, k=_ALL_CHUNKS)
        for user, snap, view in zip(part, snapshots, views, strict=True):
            vectors = {c.chunk_id: c.embedding for c in snap.chunks}
            # The rating norm describes the user's scale, not items: no content term.
            beliefs = [c for c in view.chunks if c.facet != NORM_FACET]
            missing = [c.chunk_id for c in beliefs if c.chunk_id not in vectors]
            if missing:
                raise RuntimeError(f"memory of {user} changed between two reads: {missing[:3]}")
            signs = [1.0 if c.polarity == "like" else -1.0 for c in beliefs]
            profile = None
            if view.profile is not None and snap.profile is not None:
                profile = unit_rows(snap.profile.embedding)[0]
                with_profile += 1
            evidence = tuple(_evidence(tenant, user, e) for e in view.events)
            events += len(evidence)
            if beliefs:
                memory = MemoryVectors(
                    unit_rows([vectors[c.chunk_id] for c in beliefs]),
                    np.array([s * c.strength for s, c in zip(signs, beliefs, strict=True)]),
                    profile,
                    evidence,
                    tuple(c.facet for c in beliefs),
                )
            else:
                memory = MemoryVectors(
                    np.zeros((0, dim), np.float32), np.zeros(0), profile, evidence
                )
                empty += 1
            chunks += len(beliefs)
            strengths.extend(c.strength for c in beliefs)
            dislikes += sum(s < 0 for s in signs)
            out[user] = memory
    spread = np.asarray(strengths) if strengths else np.zeros(1)
    return out, MemoryStats(
        len(users), empty, with_profile, chunks, dislikes, events,
        round(float(np.median(spread)), 4), round(float((spread >= 0.9).mean()), 4),
        round(float((spread >= 0.99).mean()), 4),
    )  # fmt: skip


def _evidence(tenant: str, user: str, event: EventView) -> tuple[str, float]:
    """(item id, signed evidence weight) of one event of the view."""
    row = Interaction.model_validate(
        {"event_id": event.event_id, "tenant": tenant, "user_id": user,
         "item_id": event.item_id, "type": event.type, "value": event.value, "ts": event.ts}
    )  # fmt: skip
    return event.item_id, evidence_weight(row)


@dataclass(frozen=True)
class MemoryTokens:
    """What a learned ranker reads of one user's long-term memory at one time."""

    keys: tuple[str, ...]  # "facet:key" of the strongest chunks, strongest first
    strengths: tuple[float, ...]  # polarity sign * decayed strength, same order
    profile: npt.NDArray[np.float32] | None  # the profile's unit embedding


def read_memory_tokens(
    uri: str, tenant: str, reads: Sequence[tuple[str, float]], k: int, dim: int
) -> list[MemoryTokens]:
    """Each (user, t), in order: the ``k`` strongest chunks and the profile as of ``t``.

    Chunks come from ``MemoryReader`` (strength decayed to ``t``); the view has no
    vectors, so the profile's embedding is read from the store at the same time.
    """
    store = open_store(uri)
    reader = MemoryReader(store, open_catalogue(uri), _no_embedder, cache_users=0,
                          event_limit=0, dimension=dim)  # fmt: skip
    out: list[MemoryTokens] = []
    for start in range(0, len(reads), _SLICE):
        part = list(reads[start : start + _SLICE])
        snapshots = store.read_snapshots_as_of([((tenant, u), t) for u, t in part], 0)
        views = reader.get_user_memories_as_of(tenant, part, k=k)
        for snap, view in zip(snapshots, views, strict=True):
            profile = None
            if view.profile is not None and snap.profile is not None:
                profile = unit_rows(snap.profile.embedding)[0]
            out.append(
                MemoryTokens(
                    tuple(f"{c.facet}:{c.key}" for c in view.chunks),
                    tuple(c.strength if c.polarity == "like" else -c.strength for c in view.chunks),
                    profile,
                )
            )
    return out


def read_event_sequences(
    uri: str, tenant: str, as_of: Mapping[str, float], limit: int, dim: int
) -> dict[str, list[tuple[str, float]]]:
    """Each user's newest ``limit`` events as of ``as_of[user]``: (item id, ts), oldest first."""
    reader = MemoryReader(open_store(uri), open_catalogue(uri), _no_embedder, cache_users=0,
                          event_limit=limit, dimension=dim)  # fmt: skip
    users = list(as_of)
    out: dict[str, list[tuple[str, float]]] = {}
    for start in range(0, len(users), _SLICE):
        part = [(u, as_of[u]) for u in users[start : start + _SLICE]]
        for (user, _), view in zip(
            part, reader.get_user_memories_as_of(tenant, part, k=0), strict=True
        ):
            out[user] = [(e.item_id, e.ts) for e in reversed(view.events)]
    return out


def _no_embedder(texts: Sequence[str]) -> Sequence[Sequence[float]]:
    raise RuntimeError("reading memory tokens and events embeds nothing")


def memory_after_replay(uri: str, tenant: str, users: Sequence[str]) -> dict[str, int]:
    """How many users hold beliefs, a profile and events once the whole replay is in: what
    idleness (the stream's last years, for most users) left of their memory."""
    store = open_store(uri)
    counts = {"users": len(users), "with_beliefs": 0, "with_profile": 0, "with_events": 0}
    for start in range(0, len(users), _SLICE):
        part = [(tenant, u) for u in users[start : start + _SLICE]]
        for snap in store.read_snapshots(part, 1).values():
            counts["with_beliefs"] += bool(snap.chunks)
            counts["with_profile"] += snap.profile is not None
            counts["with_events"] += bool(snap.events)
    return counts
