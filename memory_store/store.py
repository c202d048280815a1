"""The storage interface of the memory (its LanceDB implementation: ``memory_store.lance``).

Kept small on purpose: everything above it (agents, reader, CLI) speaks only
these methods, so the backend can move from a local path to object storage
without touching them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from memory_store.events import Interaction
from memory_store.tiers import Delta, PreferenceChunk, Profile, UserSnapshot

__all__ = [
    "ALL_EVENTS",
    "DEFAULT_EVENT_LIMIT",
    "EventRecord",
    "MemoryStore",
    "UserDelta",
    "UserKey",
    "UserMemory",
    "WriteResult",
]

# Events a snapshot carries by default: the lifecycle's per-user retention cap.
DEFAULT_EVENT_LIMIT = 1000
# An event limit that reads every stored event (maintenance: retention applies to all).
ALL_EVENTS = 1 << 62


UserKey = tuple[str, str]
"""(tenant, user_id): whose memory; every per-user read and write is keyed by it."""


@dataclass(frozen=True, slots=True)
class EventRecord:
    """An interaction and where it came from (partition/offset; -1 when not from Kafka)."""

    event: Interaction
    partition: int = -1
    offset: int = -1


@dataclass(frozen=True, slots=True)
class UserDelta:
    """One user's delta, as handed to the store in bulk.

    ``as_of``: the event time from which the state this delta writes holds (a fold's
    newest folded event, a maintenance round's time); point-in-time reads go by it.
    None: the newest time the delta itself carries (its chunks' ``last_seen``, its
    profile's ``built_at``), and never visible to as-of reads if it carries none.
    """

    tenant: str
    user_id: str
    delta: Delta
    as_of: float | None = None

    def valid_from(self) -> float:
        if self.as_of is not None:
            return self.as_of
        times = [c.last_seen for c in self.delta.upserts]
        if self.delta.profile is not None:
            times.append(self.delta.profile.built_at)
        return max(times, default=float("inf"))


@dataclass(frozen=True, slots=True)
class WriteResult:
    """What one idempotent batch write did."""

    received: int
    inserted: int


@dataclass(frozen=True, slots=True)
class UserMemory:
    """One user's stored memory for people: all three tiers and the latest change-log rows.

    Events and changes newest first, chunks strongest first.
    """

    tenant: str
    user_id: str
    event_count: int
    recent_events: list[dict[str, Any]] = field(default_factory=list)
    chunks: list[PreferenceChunk] = field(default_factory=list)
    profile: Profile | None = None
    recent_changes: list[dict[str, Any]] = field(default_factory=list)


class MemoryStore(Protocol):
    """Durable memory tiers; every call is scoped to a tenant or is tenant-blind by design."""

    def write_events(self, records: Sequence[EventRecord]) -> WriteResult:
        """Store a batch once: an event id already stored for its tenant is not stored again."""
        ...

    def read_user(self, tenant: str, user_id: str, limit: int = 20) -> UserMemory:
        """A user's memory (``limit`` events and changes), filtered hard on tenant and user."""
        ...

    def users_ingested_after(self, partition: int, after: float) -> dict[UserKey, int]:
        """Users with events from ``partition`` stored after ``after`` (epoch s), and the
        smallest offset among those events: what a restart must look at again."""
        ...

    def list_users(self, tenant: str | None = None) -> list[UserKey]:
        """Everyone with any memory, of one tenant or (operators only) of all, sorted."""
        ...

    def count_events(self, tenant: str | None = None) -> int:
        """Stored events, for one tenant or (operators only) all of them."""
        ...

    def read_snapshots(
        self, keys: Sequence[UserKey], event_limit: int = DEFAULT_EVENT_LIMIT
    ) -> dict[UserKey, UserSnapshot]:
        """Each user's chunks, profile and newest ``event_limit`` events, in one read per tier.

        Unknown users get an empty snapshot; rows are filtered hard on tenant and user.
        """
        ...

    def read_snapshots_as_of(
        self, reads: Sequence[tuple[UserKey, float]], event_limit: int = DEFAULT_EVENT_LIMIT
    ) -> list[UserSnapshot]:
        """Each (user, t), in order: the memory as it stood at event time ``t``.

        Chunks and profile as the last write holding from ``t`` or earlier left them;
        the newest ``event_limit`` events with ``ts <= t`` not yet expired at ``t``.
        """
        ...

    def read_event_records(self, keys: Sequence[UserKey]) -> dict[UserKey, list[EventRecord]]:
        """Each user's stored events with their source position, in stream order.

        Stream order is (partition, offset); events stored without one follow, by
        (ts, event id). Users without events are left out.
        """
        ...

    def write_deltas(self, deltas: Sequence[UserDelta], plan_id: str | None = None) -> None:
        """Store many users' deltas idempotently, one write per tier.

        ValueError (before anything is written) if a delta holds another user's memory.
        """
        ...

    def compact(self) -> None:
        """Merge small fragments and refresh indexes; run by the single writer."""
        ...
