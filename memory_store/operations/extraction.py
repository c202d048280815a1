"""Extraction: new evidence about a topic the user has no belief on yet becomes a chunk.

Only topics without a chunk (by key or consolidated alias) are touched; evidence
about known topics is left to reinforcement and weakening, so the three
operations never count one event twice.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence

from memory_store.engagement import ENGAGEMENT_FACET, engaged_strength, engagement_text
from memory_store.events import Interaction, Item
from memory_store.operations.params import LifecycleParams
from memory_store.signals import FacetEvidence, statement, stream_evidence
from memory_store.tiers import (
    ChangeRecord,
    Delta,
    Operation,
    PreferenceChunk,
    UserSnapshot,
    chunk_id_for,
)

__all__ = ["Embedder", "embed_all", "extraction", "seeded_chunk"]

Embedder = Callable[[Sequence[str]], Sequence[Sequence[float]]]


def embed_all(embed: Embedder, texts: Sequence[str]) -> list[tuple[float, ...]]:
    """One embedding call for the distinct texts (a topic's satisfaction and engagement
    chunks share one), checked so a short answer cannot misalign chunks."""
    if not texts:
        return []
    distinct = list(dict.fromkeys(texts))
    vectors = embed(distinct)
    if len(vectors) != len(distinct):
        raise ValueError(f"embedder returned {len(vectors)} vectors for {len(distinct)} texts")
    by_text = {t: v if isinstance(v, tuple) else tuple(float(x) for x in v)
               for t, v in zip(distinct, vectors, strict=True)}  # fmt: skip
    return [by_text[t] for t in texts]


def seeded_chunk(snapshot: UserSnapshot, fe: FacetEvidence, vector: tuple[float, ...],
                 params: LifecycleParams) -> PreferenceChunk:  # fmt: skip
    """The new chunk of ``fe``'s topic: a satisfaction belief with strength |w| *
    initial_strength and the sign of w, or an engagement belief at its first choice."""
    if fe.facet == ENGAGEMENT_FACET:
        strength, text = engaged_strength(0.0, 1), engagement_text(fe.key, fe.topic)
    else:
        strength = min(1.0, abs(fe.weight) * params.initial_strength)
        text = statement(fe.polarity, fe.topic)
    return PreferenceChunk(
        chunk_id=chunk_id_for(snapshot.tenant, snapshot.user_id, fe.facet, fe.key),
        tenant=snapshot.tenant, user_id=snapshot.user_id, facet=fe.facet, key=fe.key,
        topic=fe.topic, text=text, embedding=vector, polarity=fe.polarity, strength=strength,
        evidence=(fe.event_id,), evidence_ts=(fe.ts,), evidence_count=1,
        first_seen=fe.ts, last_seen=fe.ts, version=1, through=fe.position,
    )  # fmt: skip


def extraction(
    snapshot: UserSnapshot,
    events: Iterable[Interaction],
    items: Mapping[str, Item],
    params: LifecycleParams,
    embed: Embedder,
    plan_id: str | None = None,
    evidence: Sequence[FacetEvidence] | None = None,
    positions: Sequence[int] | None = None,
) -> Delta:
    """A chunk per new (facet, key), seeded by its earliest non-neutral event.

    Polarity is the sign of that event's weight, strength |w| * initial_strength
    (engagement topics: see ``memory_store.engagement``).
    The embedded text is the polarity-free topic ("Comedy"), so a later flip
    keeps the embedding true; all topics are embedded in one call.
    """
    known = snapshot.key_index()
    seeds: dict[tuple[str, str], FacetEvidence] = {}
    if evidence is None:
        evidence = stream_evidence(snapshot, events, items, params.min_weight, positions)
    for fe in evidence:
        topic_key = (fe.facet, fe.key)
        if topic_key not in known and topic_key not in seeds:
            seeds[topic_key] = fe
    if not seeds:
        return Delta.empty()
    ordered = list(seeds.values())
    vectors = embed_all(embed, [fe.topic for fe in ordered])
    chunks: list[PreferenceChunk] = []
    changes: list[ChangeRecord] = []
    for fe, vector in zip(ordered, vectors, strict=True):
        chunk = seeded_chunk(snapshot, fe, vector, params)
        strength = chunk.strength
        chunks.append(chunk)
        changes.append(
            snapshot.change(
                op=Operation.EXTRACTION,
                chunk_id=chunk.chunk_id,
                before_strength=None,
                after_strength=strength,
                event_ids=(fe.event_id,),
                plan_id=plan_id,
                detail=f"created '{chunk.text}' ({fe.facet}={fe.key}) from weight {fe.weight:+.2f}",
            )
        )
    return Delta(upserts=tuple(chunks), changes=tuple(changes))
