"""A compact, pure summary of one user's memory: everything a policy may look at.

Policies never read a snapshot: they read this summary, so the fixed, rules and
LLM policies decide on exactly the same facts, and the LLM prompt stays a few
lines per user however large the memory is.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace

import numpy as np

from memory_store.operations import LifecycleParams, cosine, expired_events, top_chunks
from memory_store.operations.forgetting import decay_time, effective_strength
from memory_store.rating_norm import is_norm
from memory_store.tiers import Operation, PreferenceChunk, UserSnapshot

__all__ = [
    "LastRun",
    "OperationClock",
    "UserSummary",
    "op_facts",
    "render_summary",
    "summarize",
    "user_header",
]

# A chunk with at least this much evidence but a stored strength at most this low
# was pushed down by contradicting evidence (agreeing evidence only raises strength).
CONTESTED_MIN_EVIDENCE = 4
CONTESTED_MAX_STRENGTH = 0.3


@dataclass(frozen=True, slots=True)
class LastRun:
    """When an operation last ran for a user, and the user's event count at that moment."""

    ts: float
    events_total: int


@dataclass(frozen=True, slots=True)
class OperationClock:
    """Per-user bookkeeping the writer keeps: events seen so far and each operation's last run.

    The event tier is capped, so the count of events ever seen cannot be read from
    a snapshot; the writer counts them and hands them in here.
    """

    events_total: int = 0
    runs: Mapping[Operation, LastRun] = field(default_factory=dict, hash=False)
    # The stream position of the last event counted: a replayed event is not counted again.
    through: int = -1

    def observed(self, n_events: int) -> OperationClock:
        """The clock after ``n_events`` more events arrived."""
        return replace(self, events_total=self.events_total + n_events)

    def observed_at(self, positions: Sequence[int]) -> OperationClock:
        """The clock after the events at ``positions`` (stream order): only new ones count."""
        new = [p for p in positions if p > self.through]
        if not new:
            return self
        return replace(self, events_total=self.events_total + len(new), through=max(new))

    def ran(self, op: Operation, ts: float) -> OperationClock:
        """The clock after ``op`` ran at ``ts``."""
        return replace(self, runs={**self.runs, op: LastRun(ts, self.events_total)})


@dataclass(frozen=True, slots=True)
class UserSummary:
    """What a policy knows about one user at ``now``; times in event-time seconds."""

    tenant: str
    user_id: str
    now: float
    events_total: int
    # Events arrived since each operation last ran (all of them if it never ran).
    events_since: Mapping[Operation, int]
    # Seconds since each operation last ran; None if it never ran.
    seconds_since: Mapping[Operation, float | None]
    chunk_count: int
    # Chunk strengths decayed to ``now``; zeros for a user without chunks.
    strength_mean: float
    strength_min: float
    strength_max: float
    strength_spread: float  # population standard deviation
    weak_chunks: int  # decayed strength below the weak threshold
    forgettable_chunks: int  # decayed below the forget threshold: forgetting deletes them now
    contested_chunks: int  # much evidence yet low strength: evidence disagrees
    near_duplicate_pairs: int  # same facet and polarity, cosine >= similarity threshold
    next_forget_at: float | None  # earliest time a remaining chunk decays below the threshold
    profile_age_s: float | None  # None: no profile yet
    profile_drift: float  # 0: built from today's top chunks; 1: none in common, or no profile
    event_count: int
    event_cap: int
    expired_events: int  # events outside retention (TTL or cap) that forgetting would drop
    idle_s: float | None  # seconds since the user's newest event or chunk evidence

    @property
    def key(self) -> tuple[str, str]:
        return (self.tenant, self.user_id)


def _duplicate_pairs(chunks: Sequence[PreferenceChunk], threshold: float) -> int:
    groups: dict[tuple[str, str], list[PreferenceChunk]] = {}
    for c in chunks:
        groups.setdefault((c.facet, c.polarity), []).append(c)
    pairs = 0
    for group in groups.values():
        n = len(group)
        if n < 2:
            continue
        dims = {len(c.embedding) for c in group}
        if len(dims) == 1 and 0 not in dims:
            matrix = np.array([c.embedding for c in group], dtype=np.float64)
            norms = np.linalg.norm(matrix, axis=1)
            unit = matrix / np.where(norms == 0.0, 1.0, norms)[:, None]
            sims = unit @ unit.T
            sims[norms == 0.0, :] = 0.0
            sims[:, norms == 0.0] = 0.0
            pairs += int(np.count_nonzero(np.triu(sims >= threshold, k=1)))
        else:
            pairs += sum(
                cosine(group[i].embedding, group[j].embedding) >= threshold
                for i in range(n)
                for j in range(i + 1, n)
            )
    return pairs


def _forget_time(chunk: PreferenceChunk, params: LifecycleParams) -> float | None:
    """When the chunk's decayed strength reaches the forget threshold (None: never)."""
    if params.forget_threshold <= 0.0:
        return None
    if chunk.strength <= params.forget_threshold:
        return chunk.last_seen
    return chunk.last_seen + params.half_life * math.log2(chunk.strength / params.forget_threshold)


def _drift(snapshot: UserSnapshot, now: float, params: LifecycleParams) -> float:
    """Jaccard distance between the profile's sources and today's top chunk versions."""
    if snapshot.profile is None:
        return 1.0
    current = {(c.chunk_id, c.version) for c in top_chunks(snapshot, now, params)}
    sources = set(snapshot.profile.sources)
    union = current | sources
    return 1.0 - len(current & sources) / len(union) if union else 0.0


def summarize(
    snapshot: UserSnapshot,
    clock: OperationClock,
    now: float,
    params: LifecycleParams,
    weak_threshold: float | None = None,
) -> UserSummary:
    """The summary of ``snapshot`` at ``now``; pure. Weak means below 2x the forget threshold."""
    weak_below = 2 * params.forget_threshold if weak_threshold is None else weak_threshold
    chunks = [c for c in snapshot.chunks if not is_norm(c)]  # the norm never decays
    decay_to = decay_time(snapshot, now, params)  # the user's own clock, by default
    strengths = np.array([effective_strength(c, decay_to, params) for c in chunks], np.float64)
    forget_times = [
        t for c in chunks if (t := _forget_time(c, params)) is not None and t > decay_to
    ]
    activity = [e.ts for e in snapshot.events] + [c.last_seen for c in chunks]
    since: dict[Operation, int] = {}
    ago: dict[Operation, float | None] = {}
    for op in Operation:
        last = clock.runs.get(op)
        since[op] = clock.events_total - (last.events_total if last else 0)
        ago[op] = None if last is None else now - last.ts
    return UserSummary(
        tenant=snapshot.tenant,
        user_id=snapshot.user_id,
        now=now,
        events_total=clock.events_total,
        events_since=since,
        seconds_since=ago,
        chunk_count=len(chunks),
        strength_mean=float(strengths.mean()) if chunks else 0.0,
        strength_min=float(strengths.min()) if chunks else 0.0,
        strength_max=float(strengths.max()) if chunks else 0.0,
        strength_spread=float(strengths.std()) if chunks else 0.0,
        weak_chunks=int(np.count_nonzero(strengths < weak_below)),
        forgettable_chunks=int(np.count_nonzero(strengths < params.forget_threshold)),
        contested_chunks=sum(
            c.evidence_count >= CONTESTED_MIN_EVIDENCE and c.strength <= CONTESTED_MAX_STRENGTH
            for c in chunks
        ),
        near_duplicate_pairs=_duplicate_pairs(chunks, params.similarity_threshold),
        next_forget_at=min(forget_times, default=None),
        profile_age_s=None if snapshot.profile is None else now - snapshot.profile.built_at,
        profile_drift=_drift(snapshot, now, params),
        event_count=len(snapshot.events),
        event_cap=params.max_events_per_user,
        expired_events=len(expired_events(snapshot, now, params)),
        idle_s=now - max(activity) if activity else None,
    )


def _dur(seconds: float | None) -> str:
    if seconds is None:
        return "never"
    if seconds < 3_600:
        return f"{seconds / 60:.0f}m"
    if seconds < 86_400:
        return f"{seconds / 3_600:.1f}h"
    return f"{seconds / 86_400:.1f}d"


def render_summary(s: UserSummary, label: str | None = None) -> str:
    """Four short lines for a prompt: the facts that matter to each operation."""
    since = ", ".join(f"{op.value} {s.events_since[op]}" for op in Operation)
    profile = (
        "none"
        if s.profile_age_s is None
        else f"age {_dur(s.profile_age_s)}, drift {s.profile_drift:.2f}"
    )
    return "\n".join(
        (
            f"{label or f'{s.tenant}/{s.user_id}'}: {s.event_count} events stored "
            f"(cap {s.event_cap}, {s.expired_events} expired), idle {_dur(s.idle_s)}",
            f"  new events since last run: {since}",
            f"  {s.chunk_count} beliefs: strength mean {s.strength_mean:.2f} "
            f"min {s.strength_min:.2f} max {s.strength_max:.2f}; weak {s.weak_chunks}, "
            f"forgettable {s.forgettable_chunks}, contested {s.contested_chunks}, "
            f"duplicate pairs {s.near_duplicate_pairs}",
            f"  profile: {profile}",
        )
    )


def user_header(s: UserSummary, label: str) -> str:
    """One line naming a user (by ``label``, not id: ids are noise to a model) and its size."""
    return f"{label} ({s.chunk_count} beliefs, {s.event_count} events, idle {_dur(s.idle_s)})"


def _count(n: int, what: str) -> str:
    # "no duplicate pairs" rather than "0 duplicate pairs": a small model reads words better.
    return f"{n} {what}" if n else f"no {what}"


def op_facts(s: UserSummary, op: Operation) -> str:
    """The few facts that call for ``op`` or not, as a short phrase."""
    if op is Operation.CONSOLIDATION:
        return _count(s.near_duplicate_pairs, "duplicate pairs")
    if op is Operation.FORGETTING:
        return ", ".join(
            (
                _count(s.forgettable_chunks, "faded"),
                _count(s.weak_chunks, "weak"),
                _count(s.expired_events, "expired"),
            )
        )
    if op is Operation.RESYNTHESIS:
        if s.profile_age_s is None:
            return "no profile"
        if s.profile_drift == 0.0:
            return "profile up to date"
        return f"profile drift {s.profile_drift:.2f}"
    return _count(s.events_since[op], "new events")
