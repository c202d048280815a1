"""Absorption: a user's events folded into beliefs one at a time, in stream order.

Extraction, reinforcement and weakening are order-dependent (decay to each
event's time, flips at a threshold), so the memory is a function of the stream
only if every event is applied once, in the user's stream order, whatever the
batches. Here each event in turn creates, reinforces or weakens the chunk of
each of its topics; an event at or below a chunk's ``through`` was already
counted and is skipped, so a replay from any point is a no-op.

An event with weight whose item is not known yet **holds** the fold: it and the
user's later events wait (stored in the event tier) until the item arrives, and
are folded then. Folding past it would count later events before it, so items
arriving late would give another memory than items arriving early.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from memory_store.events import Interaction, Item
from memory_store.operations.extraction import Embedder, embed_all, seeded_chunk
from memory_store.operations.norm_update import norm_delta
from memory_store.operations.params import LifecycleParams
from memory_store.operations.reinforcement import reinforced
from memory_store.operations.weakening import weakened
from memory_store.rating_norm import NORM_FACET, NORM_KEY, NORM_TOPIC, RatingNorm, norm_chunk
from memory_store.signals import evidence_until_hold
from memory_store.tiers import (
    ChangeRecord,
    Delta,
    Operation,
    PreferenceChunk,
    UserSnapshot,
)

__all__ = ["Absorbed", "absorb_stream"]


@dataclass(frozen=True, slots=True)
class Absorbed:
    """The fold's delta, and the position it stopped at (an event waiting for its item)."""

    delta: Delta
    held_at: int | None = None


class _Log:
    """Change records per (chunk, operation) of one fold: first strength before, last after."""

    def __init__(self) -> None:
        self.entries: dict[tuple[str, Operation], tuple[float | None, float, list[str], str]] = {}
        self.flips: dict[str, list[str]] = {}

    def add(self, op: Operation, before: PreferenceChunk | None, after: PreferenceChunk,
            event_id: str) -> None:  # fmt: skip
        key = (after.chunk_id, op)
        if key in self.entries:
            first, _, ids, text = self.entries[key]
            ids.append(event_id)
            self.entries[key] = (first, after.strength, ids, text)
        else:
            start = None if before is None else before.strength
            text = after.text if before is None else before.text
            self.entries[key] = (start, after.strength, [event_id], text)
        if before is not None and before.polarity is not after.polarity:
            self.flips.setdefault(after.chunk_id, []).append(f"{before.polarity}->{after.polarity}")

    def records(self, snapshot: UserSnapshot, plan_id: str | None) -> list[ChangeRecord]:
        out = []
        for (cid, op), (before, after, ids, text) in self.entries.items():
            if op is Operation.EXTRACTION:
                detail = f"created '{text}' from {ids[0]}"
            else:
                verb = "reinforced" if op is Operation.REINFORCEMENT else "weakened"
                start = f"{before:.3f}" if before is not None else "new"
                detail = f"'{text}' {verb} by {len(ids)} event(s): {start} -> {after:.3f}"
                if op is Operation.WEAKENING and cid in self.flips:
                    detail += f"; flipped {', '.join(self.flips[cid])}"
            out.append(snapshot.change(op, cid, before, after, tuple(ids), plan_id, detail))
        return out


def absorb_stream(
    snapshot: UserSnapshot,
    events: Iterable[Interaction],
    items: Mapping[str, Item],
    params: LifecycleParams,
    embed: Embedder,
    plan_id: str | None = None,
    positions: Sequence[int] | None = None,
) -> Absorbed:
    """Fold the user's events into beliefs, at ``positions`` (their places in the stream).

    Without ``positions`` the list is the user's stream from its start (0, 1, ...).

    Deterministic: the same events at the same positions give the same chunks,
    strengths, evidence and versions, however they are cut into calls, and
    events already counted change nothing.
    """
    norm = norm_chunk(snapshot)
    found = evidence_until_hold(
        snapshot.tenant, snapshot.user_id, events, items, params.min_weight, positions,
        norm=RatingNorm.of(snapshot),
    )  # fmt: skip
    steps, held_at = found.steps, found.held_at
    index = snapshot.key_index()
    original = snapshot.chunk_index()
    topics = list(dict.fromkeys((fe.facet, fe.key, fe.topic) for fe in steps
                                if (fe.facet, fe.key) not in index))  # fmt: skip
    if found.rated and norm is None:
        topics.append((NORM_FACET, NORM_KEY, NORM_TOPIC))
    vectors = dict(
        zip(((f, k) for f, k, _ in topics), embed_all(embed, [t for _, _, t in topics]),
            strict=True)
    )  # fmt: skip
    work: dict[str, PreferenceChunk] = {}
    log = _Log()
    for fe in steps:
        cid = index.get((fe.facet, fe.key))
        if cid is None:
            chunk = seeded_chunk(snapshot, fe, vectors[(fe.facet, fe.key)], params)
            index[(fe.facet, fe.key)] = chunk.chunk_id
            work[chunk.chunk_id] = chunk
            log.add(Operation.EXTRACTION, None, chunk, fe.event_id)
            continue
        chunk = work.get(cid) or original[cid]
        if chunk.has_counted(fe.position):
            continue
        if fe.polarity is chunk.polarity:
            after, op = reinforced(chunk, fe, params), Operation.REINFORCEMENT
        else:
            after, op = weakened(chunk, fe, params)[0], Operation.WEAKENING
        work[cid] = after
        log.add(op, chunk, after, fe.event_id)
    records = log.records(snapshot, plan_id)
    if found.rated:
        vector = norm.embedding if norm is not None else vectors[(NORM_FACET, NORM_KEY)]
        moved = norm_delta(snapshot, found.rated, vector, plan_id)
        work.update((c.chunk_id, c) for c in moved.upserts)
        records += moved.changes
    delta = Delta(upserts=tuple(work.values()), changes=tuple(records))
    return Absorbed(delta, held_at)
