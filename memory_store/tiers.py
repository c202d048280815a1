"""The belief state of one user as immutable values, and the delta that changes it.

MARS keeps three tiers: events (raw signals), preference chunks (mutable beliefs
with strength and evidence) and a profile (a narrative distilled from the chunks).
Every lifecycle operation is a pure function from a ``UserSnapshot`` to a
``Delta``; ``apply_delta`` is the only way a snapshot changes, so the whole
lifecycle can be tested, replayed and audited without any storage.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Any

from memory_store.events import Interaction
from memory_store.keys import SEPARATOR

__all__ = [
    "MAX_EVIDENCE",
    "NO_POSITION",
    "ChangeRecord",
    "Delta",
    "Operation",
    "Polarity",
    "PreferenceChunk",
    "Profile",
    "UserSnapshot",
    "apply_delta",
    "bounded_evidence",
    "check_owner",
    "chunk_id_for",
]

# A chunk remembers the ids of its most recent evidence only, so its size is bounded.
MAX_EVIDENCE = 32
# ``through`` of a chunk that has counted nothing (stream positions are never negative).
NO_POSITION = -1


class Polarity(StrEnum):
    """Whether a chunk is a liking or a disliking: a flip keeps the chunk, not the sign."""

    LIKE = "like"
    DISLIKE = "dislike"

    def flipped(self) -> Polarity:
        return Polarity.DISLIKE if self is Polarity.LIKE else Polarity.LIKE


class Operation(StrEnum):
    """The six lifecycle operations, named in every change record."""

    EXTRACTION = "extraction"
    REINFORCEMENT = "reinforcement"
    WEAKENING = "weakening"
    CONSOLIDATION = "consolidation"
    FORGETTING = "forgetting"
    RESYNTHESIS = "resynthesis"


@functools.lru_cache(maxsize=1 << 16)
def chunk_id_for(tenant: str, user_id: str, facet: str, key: str) -> str:
    """A chunk's id: stable across polarity flips so its history stays one chunk.

    Cached: every chunk construction checks its id, ~6 times per event on ingestion.
    """
    # Tenant and user ids cannot hold the separator (``memory_store.keys``): one user's
    # topics are the only parts that could, and they cannot collide across users.
    raw = SEPARATOR.join((tenant, user_id, facet, key)).encode("utf-8")
    return hashlib.sha1(raw, usedforsecurity=False).hexdigest()


def bounded_evidence(
    pairs: Iterable[tuple[str, float]],
) -> tuple[tuple[str, ...], tuple[float, ...]]:
    """The ``MAX_EVIDENCE`` most recent (event id, ts) pairs, by (ts, id): an audit trail only.

    What counts is decided by the chunk's stream position (``through``), never by
    this list, so a bounded list cannot make an event count twice or not at all.
    """
    by_id: dict[str, float] = {}
    for event_id, ts in pairs:
        by_id.setdefault(event_id, ts)
    kept = sorted(by_id.items(), key=lambda p: (p[1], p[0]))[-MAX_EVIDENCE:]
    return tuple(e for e, _ in kept), tuple(t for _, t in kept)


def _appended_evidence(
    ids: tuple[str, ...], times: tuple[float, ...], event_id: str, ts: float
) -> tuple[tuple[str, ...], tuple[float, ...]]:
    """``bounded_evidence`` of the listed pairs plus one, without re-sorting in the usual case.

    Events mostly arrive in time order: then the new pair goes last and at most
    the oldest drops out. Anything else takes the general path.
    """
    if event_id in ids:
        return ids, times
    if times and (ts, event_id) < (times[-1], ids[-1]):
        return bounded_evidence([*zip(ids, times, strict=True), (event_id, ts)])
    ids, times = (*ids, event_id), (*times, ts)
    if len(ids) > MAX_EVIDENCE:
        ids, times = ids[1:], times[1:]
    return ids, times


@dataclass(frozen=True, slots=True)
class PreferenceChunk:
    """One fine-grained belief ("likes comedy") with its strength and the evidence behind it.

    Beyond the MARS fields it keeps ``topic`` (the polarity-free phrase that is
    embedded, so a flip keeps a valid embedding), ``evidence_ts`` (event time of
    each listed id, ascending), ``through`` (the stream position of the last event
    it counted: an event at or below it was counted, one above it was not) and
    ``aliases`` (keys merged into it by consolidation, so their evidence still
    lands here). ``strength`` is the belief as of ``last_seen``; decay is applied
    lazily from there.
    """

    chunk_id: str
    tenant: str
    user_id: str
    facet: str
    key: str
    topic: str
    text: str
    embedding: tuple[float, ...]
    polarity: Polarity
    strength: float
    evidence: tuple[str, ...]
    evidence_ts: tuple[float, ...]
    evidence_count: int
    first_seen: float
    last_seen: float
    version: int = 1
    through: int = NO_POSITION
    aliases: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.chunk_id != chunk_id_for(self.tenant, self.user_id, self.facet, self.key):
            raise ValueError("chunk_id must be chunk_id_for(tenant, user_id, facet, key)")
        if not 0.0 <= self.strength <= 1.0:
            raise ValueError(f"strength {self.strength} outside [0, 1]")
        if len(self.evidence) != len(self.evidence_ts) or len(self.evidence) > MAX_EVIDENCE:
            raise ValueError("evidence and evidence_ts must match and hold <= MAX_EVIDENCE")
        if self.evidence_count < len(set(self.evidence)):
            raise ValueError("evidence_count cannot be below the listed evidence")
        if self.first_seen > self.last_seen:
            raise ValueError("first_seen after last_seen")

    def has_counted(self, position: int) -> bool:
        """Whether the event at this stream position already shaped the chunk.

        A user's events are folded in stream order, so every event of the chunk's
        topic up to ``through`` was counted, and none after it.
        """
        return position <= self.through

    def add_evidence(
        self, event_id: str, ts: float, position: int, **changes: Any
    ) -> PreferenceChunk:
        """The chunk with one more counted event (at ``position``), plus field ``changes``.

        Each counted event is one version, so a chunk's version depends only on the
        events it counted, never on how they were batched. One new chunk per event:
        this is the innermost step of ingestion.
        """
        ids, times = _appended_evidence(self.evidence, self.evidence_ts, event_id, ts)
        through = max(self.through, position)
        if set(changes) - {"strength"}:
            return replace(self, evidence=ids, evidence_ts=times, through=through,
                           evidence_count=self.evidence_count + 1, version=self.version + 1,
                           first_seen=min(self.first_seen, ts), last_seen=max(self.last_seen, ts),
                           **changes)  # fmt: skip
        # The usual case, built directly: ``replace`` costs about as much again per event.
        return PreferenceChunk(
            self.chunk_id, self.tenant, self.user_id, self.facet, self.key, self.topic, self.text,
            self.embedding, self.polarity, changes.get("strength", self.strength), ids, times,
            self.evidence_count + 1, min(self.first_seen, ts), max(self.last_seen, ts),
            self.version + 1, through, self.aliases,
        )  # fmt: skip


@dataclass(frozen=True, slots=True)
class Profile:
    """The narrative tier: a readable summary and the chunk versions it was built from."""

    tenant: str
    user_id: str
    narrative: str
    embedding: tuple[float, ...]
    version: int
    sources: tuple[tuple[str, int], ...]
    built_at: float


@dataclass(frozen=True, slots=True)
class UserSnapshot:
    """Everything the operations may read about one user, and nothing about anyone else.

    ``chunks`` is a tuple kept sorted by chunk_id, so equal memories compare equal
    whatever order built them; ``events`` is sorted by ts, and events of the same
    second keep the order given: the store gives them in stream order, which is the
    order the user acted in (an id says nothing about it).
    """

    tenant: str
    user_id: str
    chunks: tuple[PreferenceChunk, ...] = ()
    profile: Profile | None = None
    events: tuple[Interaction, ...] = field(default=())

    def __post_init__(self) -> None:
        chunks = tuple(sorted(self.chunks, key=lambda c: c.chunk_id))
        if len({c.chunk_id for c in chunks}) != len(chunks):
            raise ValueError("duplicate chunk_id in snapshot")
        events = tuple(sorted(self.events, key=lambda e: e.ts))
        if len({e.event_id for e in events}) != len(events):
            raise ValueError("duplicate event_id in snapshot")
        owners = [(c.tenant, c.user_id) for c in chunks]
        owners += [(e.tenant, e.user_id) for e in events]
        if self.profile is not None:
            owners.append((self.profile.tenant, self.profile.user_id))
        if any(o != (self.tenant, self.user_id) for o in owners):
            raise ValueError("snapshot holds memory of another tenant or user")
        object.__setattr__(self, "chunks", chunks)
        object.__setattr__(self, "events", events)

    def change(
        self,
        op: Operation,
        chunk_id: str | None,
        before_strength: float | None,
        after_strength: float | None,
        event_ids: tuple[str, ...],
        plan_id: str | None,
        detail: str,
    ) -> ChangeRecord:
        """A change record owned by this snapshot's tenant and user, by construction."""
        return ChangeRecord(
            op, self.tenant, self.user_id, chunk_id, before_strength, after_strength,
            event_ids, plan_id, detail,
        )  # fmt: skip

    def chunk_index(self) -> dict[str, PreferenceChunk]:
        return {c.chunk_id: c for c in self.chunks}

    def key_index(self) -> dict[tuple[str, str], str]:
        """(facet, key or alias) -> chunk_id: where new evidence for a topic lands."""
        index: dict[tuple[str, str], str] = {}
        for c in self.chunks:
            for alias in c.aliases:
                index.setdefault((c.facet, alias), c.chunk_id)
        for c in self.chunks:
            index[(c.facet, c.key)] = c.chunk_id
        return index


@dataclass(frozen=True, slots=True)
class ChangeRecord:
    """One audited change: which operation, to what, from which evidence, why."""

    op: Operation
    tenant: str
    user_id: str
    chunk_id: str | None
    before_strength: float | None
    after_strength: float | None
    event_ids: tuple[str, ...]
    plan_id: str | None
    detail: str


@dataclass(frozen=True, slots=True)
class Delta:
    """What one operation wants changed; empty deltas are cheap and common."""

    upserts: tuple[PreferenceChunk, ...] = ()
    deletes: tuple[str, ...] = ()
    profile: Profile | None = None
    forget_event_ids: tuple[str, ...] = ()
    changes: tuple[ChangeRecord, ...] = ()

    @staticmethod
    def empty() -> Delta:
        return Delta()

    @property
    def is_empty(self) -> bool:
        return not (self.upserts or self.deletes or self.profile or self.forget_event_ids)

    @staticmethod
    def merge(*deltas: Delta) -> Delta:
        """Deltas applied in order, as one: a later upsert revives, a later delete wins."""
        upserts: dict[str, PreferenceChunk] = {}
        deletes: dict[str, None] = {}
        forget: dict[str, None] = {}
        profile: Profile | None = None
        changes: list[ChangeRecord] = []
        for d in deltas:
            for c in d.upserts:
                deletes.pop(c.chunk_id, None)
                upserts[c.chunk_id] = c
            for cid in d.deletes:
                upserts.pop(cid, None)
                deletes[cid] = None
            forget.update(dict.fromkeys(d.forget_event_ids))
            profile = d.profile if d.profile is not None else profile
            changes.extend(d.changes)
        return Delta(
            tuple(upserts.values()), tuple(deletes), profile, tuple(forget), tuple(changes)
        )


def check_owner(tenant: str, user_id: str, delta: Delta) -> None:
    """Raise ValueError if ``delta`` holds memory of anyone but this tenant's user."""
    owner = (tenant, user_id)
    foreign = [c.chunk_id for c in delta.upserts if (c.tenant, c.user_id) != owner]
    if delta.profile is not None and (delta.profile.tenant, delta.profile.user_id) != owner:
        foreign.append("profile")
    foreign += [f"change:{r.op}" for r in delta.changes if (r.tenant, r.user_id) != owner]
    if foreign:
        raise ValueError(f"delta touches another tenant or user: {foreign[:3]}")


def apply_delta(snapshot: UserSnapshot, delta: Delta) -> UserSnapshot:
    """The snapshot after ``delta``: idempotent, and refusing another user's memory."""
    check_owner(snapshot.tenant, snapshot.user_id, delta)
    chunks = snapshot.chunk_index()
    for c in delta.upserts:
        chunks[c.chunk_id] = c
    for cid in delta.deletes:
        chunks.pop(cid, None)
    forget = set(delta.forget_event_ids)
    return UserSnapshot(
        tenant=snapshot.tenant,
        user_id=snapshot.user_id,
        chunks=tuple(chunks.values()),
        profile=delta.profile if delta.profile is not None else snapshot.profile,
        events=tuple(e for e in snapshot.events if e.event_id not in forget),
    )
