"""Forgetting: beliefs the user stopped confirming fade out, and old events go.

Beliefs decay on the user's own clock by default (``decay_clock``): from a
chunk's last evidence to the user's newest activity, not to the wall clock.
A belief fades when the user keeps interacting without confirming it; a
user who goes quiet keeps what the memory learned, so a returning user is
not a stranger. Raw events still expire by the TTL on everybody's clock.

Decay is computed, never stored: a chunk's stored strength is its belief as of
``last_seen``, and forgetting only deletes chunks whose strength decayed to
``now`` is below the threshold. Writing decayed strengths back would decay
them again on the next run, so repeating forgetting with the same ``now``
changes nothing.
"""

from __future__ import annotations

from memory_store.operations.params import LifecycleParams
from memory_store.rating_norm import is_norm
from memory_store.tiers import ChangeRecord, Delta, Operation, PreferenceChunk, UserSnapshot

__all__ = ["decay_time", "effective_strength", "expired_events", "forgetting"]


def effective_strength(chunk: PreferenceChunk, now: float, params: LifecycleParams) -> float:
    """The chunk's strength decayed from its last evidence to ``now`` (see ``decay_time``).

    The rating norm is a fact about the user, not a belief: it does not decay."""
    if is_norm(chunk):
        return chunk.strength
    return params.decayed(chunk.strength, now - chunk.last_seen)


def decay_time(snapshot: UserSnapshot, now: float, params: LifecycleParams) -> float:
    """The time the user's beliefs are decayed to at ``now``: on the user's clock, their newest
    activity (an event, a chunk's evidence), capped at ``now``; on the global clock, ``now``."""
    if params.decay_clock == "global":
        return now
    activity = [e.ts for e in snapshot.events] + [c.last_seen for c in snapshot.chunks]
    return min(now, max(activity, default=now))


def expired_events(snapshot: UserSnapshot, now: float, params: LifecycleParams) -> list[str]:
    """Event ids outside retention: older than the TTL, or beyond the cap (oldest first).

    An event is retained iff it is among the newest ``max_events_per_user`` (in the
    snapshot's order: time, then stream order) *and* either within the TTL or among the newest
    ``min_events_per_user``.
    """
    newest_first = snapshot.events[::-1]
    cutoff = now - params.event_ttl
    out: list[str] = []
    for rank, ev in enumerate(newest_first):
        too_old = ev.ts < cutoff and rank >= params.min_events_per_user
        if too_old or rank >= params.max_events_per_user:
            out.append(ev.event_id)
    out.reverse()
    return out


def forgetting(
    snapshot: UserSnapshot, now: float, params: LifecycleParams, plan_id: str | None = None
) -> Delta:
    """Delete chunks decayed below the forget threshold and expire events outside retention."""
    deletes: list[str] = []
    changes: list[ChangeRecord] = []
    clock = decay_time(snapshot, now, params)
    for chunk in snapshot.chunks:
        decayed = effective_strength(chunk, clock, params)
        if decayed >= params.forget_threshold or is_norm(chunk):
            continue
        deletes.append(chunk.chunk_id)
        idle_days = max(0.0, clock - chunk.last_seen) / 86_400.0
        changes.append(
            snapshot.change(
                op=Operation.FORGETTING,
                chunk_id=chunk.chunk_id,
                before_strength=chunk.strength,
                after_strength=None,
                event_ids=chunk.evidence,
                plan_id=plan_id,
                detail=(
                    f"forgot '{chunk.text}': decayed to {decayed:.3f} after "
                    f"{idle_days:.1f} idle days ({chunk.evidence_count} evidence)"
                ),
            )
        )
    expired = expired_events(snapshot, now, params)
    if expired:
        changes.append(
            snapshot.change(
                op=Operation.FORGETTING,
                chunk_id=None,
                before_strength=None,
                after_strength=None,
                event_ids=tuple(expired),
                plan_id=plan_id,
                detail=f"expired {len(expired)} event(s) outside retention",
            )
        )
    return Delta(deletes=tuple(deletes), forget_event_ids=tuple(expired), changes=tuple(changes))
