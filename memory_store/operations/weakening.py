"""Weakening: evidence contradicting a belief lowers it, and strong contradiction flips it.

A weak belief contradicted strongly is better described by the opposite belief
than by none, so it flips polarity (keeping its id and history) instead of
being deleted; only forgetting deletes. Counting follows the replay rule in
``reinforcement``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

from memory_store.events import Interaction, Item
from memory_store.operations.params import LifecycleParams
from memory_store.operations.reinforcement import reinforced
from memory_store.signals import FacetEvidence, statement, stream_evidence
from memory_store.tiers import ChangeRecord, Delta, Operation, PreferenceChunk, UserSnapshot

__all__ = ["weakened", "weakening"]


def weakened(
    chunk: PreferenceChunk, fe: FacetEvidence, params: LifecycleParams
) -> tuple[PreferenceChunk, bool]:
    """The chunk after one contradicting event, and whether it flipped.

    s - r|w|s after decay to the event's time; if that falls below the flip
    threshold and |w| is strong, the polarity flips and strength restarts at
    |w| * flip_strength.
    """
    s = params.decayed(chunk.strength, fe.ts - chunk.last_seen)
    s = max(0.0, s - params.weakening_rate * abs(fe.weight) * s)
    if s < params.flip_threshold and abs(fe.weight) >= params.strong_contradiction:
        polarity = chunk.polarity.flipped()
        strength = min(1.0, abs(fe.weight) * params.flip_strength)
        text = statement(polarity, chunk.topic)
        flipped = chunk.add_evidence(
            fe.event_id, fe.ts, fe.position, polarity=polarity, strength=strength, text=text
        )
        return flipped, True
    return chunk.add_evidence(fe.event_id, fe.ts, fe.position, strength=min(1.0, s)), False


def weakening(
    snapshot: UserSnapshot,
    events: Iterable[Interaction],
    items: Mapping[str, Item],
    params: LifecycleParams,
    plan_id: str | None = None,
    evidence: Sequence[FacetEvidence] | None = None,
    positions: Sequence[int] | None = None,
) -> Delta:
    """Weaken each chunk by the uncounted events that contradict it, oldest first.

    After a flip in this pass, later events agreeing with the *new* polarity are
    the same kind of evidence that caused the flip, so this pass counts them as
    reinforcement; otherwise a replay would count them again.
    """
    by_key = snapshot.key_index()
    original = snapshot.chunk_index()
    work: dict[str, PreferenceChunk] = {}
    used: dict[str, list[str]] = {}
    flips: dict[str, list[str]] = {}
    if evidence is None:
        evidence = stream_evidence(snapshot, events, items, params.min_weight, positions)
    for fe in evidence:
        cid = by_key.get((fe.facet, fe.key))
        if cid is None:
            continue
        chunk = work.get(cid, original[cid])
        if chunk.has_counted(fe.position):
            continue
        if fe.polarity is not chunk.polarity:
            chunk, flipped = weakened(chunk, fe, params)
            if flipped:
                flips.setdefault(cid, []).append(f"{chunk.polarity.flipped()}->{chunk.polarity}")
        elif cid in flips:
            chunk = reinforced(chunk, fe, params)
        else:
            continue
        work[cid] = chunk
        used.setdefault(cid, []).append(fe.event_id)
    upserts: list[PreferenceChunk] = []
    changes: list[ChangeRecord] = []
    for cid, chunk in work.items():
        before = original[cid]
        upserts.append(chunk)
        detail = (
            f"'{before.text}' weakened by {len(used[cid])} event(s): "
            f"{before.strength:.3f} -> {chunk.strength:.3f}"
        )
        if cid in flips:
            detail += f"; flipped {', '.join(flips[cid])} (now '{chunk.text}')"
        changes.append(
            snapshot.change(
                op=Operation.WEAKENING,
                chunk_id=cid,
                before_strength=before.strength,
                after_strength=chunk.strength,
                event_ids=tuple(used[cid]),
                plan_id=plan_id,
                detail=detail,
            )
        )
    return Delta(upserts=tuple(upserts), changes=tuple(changes))
