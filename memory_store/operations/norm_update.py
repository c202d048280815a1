"""The user's rating norm moved by their new ratings: the step that keeps evidence relative.

Extraction, reinforcement and weakening weigh each rating against the norm as it
stood before it (``memory_store.rating_norm``); this step then lets the ratings
join the norm. ``absorb_stream`` runs it with every batch, so absorbing is, event
by event, the three belief operations followed by this update.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

from memory_store.events import Interaction, Item
from memory_store.operations.extraction import Embedder, embed_all
from memory_store.rating_norm import (
    NORM_TOPIC,
    Rated,
    RatingNorm,
    norm_after,
    norm_chunk,
)
from memory_store.signals import evidence_until_hold
from memory_store.tiers import ChangeRecord, Delta, Operation, PreferenceChunk, UserSnapshot

__all__ = ["norm_delta", "norm_update"]


def norm_update(
    snapshot: UserSnapshot,
    events: Iterable[Interaction],
    items: Mapping[str, Item],
    embed: Embedder,
    plan_id: str | None = None,
    positions: Sequence[int] | None = None,
) -> Delta:
    """Every new rating of the snapshot's user (in stream order) joined to their norm."""
    no_beliefs = float("inf")  # only the ratings are wanted, not the beliefs' evidence
    found = evidence_until_hold(snapshot.tenant, snapshot.user_id, events, items, no_beliefs,
                                positions, hold=False, norm=RatingNorm.of(snapshot))  # fmt: skip
    return norm_delta(snapshot, found.rated, embed, plan_id)


def norm_delta(
    snapshot: UserSnapshot,
    rated: Sequence[Rated],
    embed: Embedder | tuple[float, ...],
    plan_id: str | None = None,
) -> Delta:
    """The norm chunk after ``rated`` and its change records (empty when nothing was rated).

    ``embed`` is the embedder, or the topic's vector when the caller embedded it already.
    """
    if not rated:
        return Delta.empty()
    before = norm_chunk(snapshot)
    if before is not None:
        vector = before.embedding
    elif isinstance(embed, tuple):
        vector = embed
    else:
        vector = embed_all(embed, [NORM_TOPIC])[0]
    after = norm_after(before, snapshot, vector, list(rated))
    return Delta(upserts=(after,), changes=tuple(_records(snapshot, before, after, rated, plan_id)))


def _records(snapshot: UserSnapshot, before: PreferenceChunk | None,
             after: PreferenceChunk, rated: Sequence[Rated],
             plan_id: str | None) -> list[ChangeRecord]:  # fmt: skip
    """Like any chunk's: its first rating creates the norm (extraction), later ones move it
    (reinforcement, whichever way), so the records do not depend on the batches."""
    ids = [r.event_id for r in rated]
    out = []
    if before is None:
        first = rated[0].norm.level
        detail = f"created the rating norm from {ids[0]}"
        out.append(snapshot.change(Operation.EXTRACTION, after.chunk_id, None, first,
                                   (ids[0],), plan_id, detail))  # fmt: skip
        ids = ids[1:]
        start: float = first
    else:
        start = before.strength
    if ids:
        out.append(snapshot.change(
            Operation.REINFORCEMENT, after.chunk_id, start, after.strength, tuple(ids), plan_id,
            f"rating norm moved by {len(ids)} rating(s): now '{after.text}'",
        ))  # fmt: skip
    return out
