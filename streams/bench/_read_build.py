"""Synthetic memory for the read benchmark: N users with ~20 chunks, a profile and events.

Built through the store interface (bulk ``write_deltas`` and ``write_events``),
as the worker writes. Topic embeddings are real MiniLM vectors of a fixed
vocabulary (embedded once); a profile's vector is the mean of its top chunks'
vectors rather than a model call per user, which would make building 100,000
users take most of an hour and is not what the benchmark measures.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Sequence

import numpy as np

from memory_store.events import EventType, Interaction
from memory_store.operations import LifecycleParams, template_narrative, top_chunks
from memory_store.signals import statement
from memory_store.store import EventRecord, MemoryStore, UserDelta
from memory_store.tiers import Delta, Polarity, PreferenceChunk, Profile, UserSnapshot, chunk_id_for

__all__ = ["TENANT", "build_memory", "vocabulary"]

TENANT = "bench"
_GENRES = (
    "Action",
    "Adventure",
    "Animation",
    "Children's",
    "Comedy",
    "Crime",
    "Documentary",
    "Drama",
    "Fantasy",
    "Film-Noir",
    "Horror",
    "Musical",
    "Mystery",
    "Romance",
    "Sci-Fi",
    "Thriller",
    "War",
    "Western",
)
_SLICE_USERS = 2000
_EVENTS_PER_USER = 5


def vocabulary() -> list[tuple[str, str, str]]:
    """(facet, key, topic) triples: genres, decades and some free-text themes."""
    topics = [("genre", g.lower(), g) for g in _GENRES]
    topics += [("era", f"{d}s", f"{d}s") for d in range(1920, 2030, 10)]
    themes = (
        "space opera, heist, courtroom, coming of age, time travel, road trip, sports, "
        "martial arts, zombies, vampires, spies, pirates, superheroes, musicals on stage, "
        "true crime, nature, cooking, war history, political satire, romantic comedy"
    )
    topics += [("theme", t.strip().replace(" ", "-"), t.strip()) for t in themes.split(",")]
    return topics


def _user_memory(
    rng: random.Random,
    user: str,
    topics: Sequence[tuple[str, str, str]],
    vectors: Sequence[tuple[float, ...]],
    chunks: int,
    now: float,
    params: LifecycleParams,
) -> tuple[Delta, list[EventRecord]]:
    picked = rng.sample(range(len(topics)), min(chunks, len(topics)))
    out: list[PreferenceChunk] = []
    for n, t in enumerate(picked):
        facet, key, topic = topics[t]
        polarity = Polarity.LIKE if rng.random() < 0.8 else Polarity.DISLIKE
        seen = now - rng.uniform(0, 30 * 86_400)
        out.append(
            PreferenceChunk(
                chunk_id=chunk_id_for(TENANT, user, facet, key),
                tenant=TENANT, user_id=user, facet=facet, key=key, topic=topic,
                text=statement(polarity, topic), embedding=vectors[t], polarity=polarity,
                strength=round(rng.uniform(0.05, 1.0), 4), evidence=(f"{user}-e{n}",),
                evidence_ts=(seen,), evidence_count=rng.randint(1, 40), first_seen=seen,
                last_seen=seen,
            )
        )  # fmt: skip
    snapshot = UserSnapshot(TENANT, user, tuple(out))
    top = top_chunks(snapshot, now, params)
    mean = np.mean([c.embedding for c in top], axis=0)
    profile = Profile(
        TENANT, user, template_narrative(top), tuple(float(x) for x in mean / np.linalg.norm(mean)),
        1, tuple((c.chunk_id, c.version) for c in top), now,
    )  # fmt: skip
    events = [
        EventRecord(
            Interaction.model_construct(
                event_id=f"{user}-ev{i}",
                tenant=TENANT,
                user_id=user,
                item_id=f"item-{rng.randrange(5000)}",
                type=EventType.VIEW,
                value=None,
                ts=now - 3600 * (i + 1),
                text=None,
                context=None,
            )
        )
        for i in range(_EVENTS_PER_USER)
    ]
    return Delta(upserts=tuple(out), profile=profile), events


def build_memory(
    store: MemoryStore,
    users: int,
    chunks_per_user: int,
    embed: Callable[[Sequence[str]], Sequence[Sequence[float]]],
    progress: Callable[[int], None] | None = None,
    seed: int = 7,
) -> float:
    """Write the synthetic memory; returns the seconds it took (compaction included)."""
    started = time.perf_counter()
    rng = random.Random(seed)
    topics = vocabulary()
    vectors = [tuple(float(x) for x in v) for v in embed([t for _, _, t in topics])]
    params, now = LifecycleParams(), time.time()
    for start in range(0, users, _SLICE_USERS):
        deltas: list[UserDelta] = []
        events: list[EventRecord] = []
        for u in range(start, min(users, start + _SLICE_USERS)):
            delta, evs = _user_memory(rng, f"u{u}", topics, vectors, chunks_per_user, now, params)
            deltas.append(UserDelta(TENANT, f"u{u}", delta))
            events += evs
        store.write_deltas(deltas)
        store.write_events(events)
        if progress is not None:
            progress(len(deltas))
    store.compact()
    return time.perf_counter() - started
