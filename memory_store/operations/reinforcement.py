"""Reinforcement: evidence agreeing with a belief makes it stronger, with diminishing returns.

Replay rule (shared with weakening): a user's events are folded in stream
order, so an event changes a chunk only if its stream position is after the
chunk's ``through`` (the position of the last event it counted). Replaying
events already applied is a no-op, and the bounded evidence list (an audit
trail) never decides what counts.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

from memory_store.engagement import engaged_strength, is_engagement
from memory_store.events import Interaction, Item
from memory_store.operations.params import LifecycleParams
from memory_store.signals import FacetEvidence, stream_evidence
from memory_store.tiers import ChangeRecord, Delta, Operation, PreferenceChunk, UserSnapshot

__all__ = ["reinforced", "reinforcement"]


def reinforced(
    chunk: PreferenceChunk, fe: FacetEvidence, params: LifecycleParams
) -> PreferenceChunk:
    """The chunk after one agreeing event: decayed to the event's time, then s + r|w|(1 - s)
    (an engagement belief: s + (1 - s) / (n + PRIOR), n its count of engaging events)."""
    s = params.decayed(chunk.strength, fe.ts - chunk.last_seen)
    if is_engagement(chunk):
        s = engaged_strength(s, chunk.evidence_count + 1)
    else:
        s = s + params.reinforcement_rate * abs(fe.weight) * (1.0 - s)
    s = min(1.0, s)
    return chunk.add_evidence(fe.event_id, fe.ts, fe.position, strength=max(0.0, s))


def reinforcement(
    snapshot: UserSnapshot,
    events: Iterable[Interaction],
    items: Mapping[str, Item],
    params: LifecycleParams,
    plan_id: str | None = None,
    evidence: Sequence[FacetEvidence] | None = None,
    positions: Sequence[int] | None = None,
) -> Delta:
    """Strengthen each chunk by the uncounted events that agree with its polarity, oldest first.

    Contradicting evidence and topics without a chunk are left to weakening and
    extraction. One change record per chunk, naming every event applied.
    """
    by_key = snapshot.key_index()
    original = snapshot.chunk_index()
    work: dict[str, PreferenceChunk] = {}
    used: dict[str, list[str]] = {}
    if evidence is None:
        evidence = stream_evidence(snapshot, events, items, params.min_weight, positions)
    for fe in evidence:
        cid = by_key.get((fe.facet, fe.key))
        if cid is None:
            continue
        chunk = work.get(cid, original[cid])
        if fe.polarity is not chunk.polarity or chunk.has_counted(fe.position):
            continue
        work[cid] = reinforced(chunk, fe, params)
        used.setdefault(cid, []).append(fe.event_id)
    upserts: list[PreferenceChunk] = []
    changes: list[ChangeRecord] = []
    for cid, chunk in work.items():
        before = original[cid]
        upserts.append(chunk)
        changes.append(
            snapshot.change(
                op=Operation.REINFORCEMENT,
                chunk_id=cid,
                before_strength=before.strength,
                after_strength=chunk.strength,
                event_ids=tuple(used[cid]),
                plan_id=plan_id,
                detail=(
                    f"'{chunk.text}' reinforced by {len(used[cid])} event(s): "
                    f"{before.strength:.3f} -> {chunk.strength:.3f}"
                ),
            )
        )
    return Delta(upserts=tuple(upserts), changes=tuple(changes))
