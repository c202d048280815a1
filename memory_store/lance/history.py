"""The memory's past: what each tier held at any event time, for point-in-time reads.

The live tables hold each chunk and profile as it is now and drop expired
events. A ranker trained on history needs the memory as it stood at each
training example's time (Feast's historical retrieval, for beliefs): so every
write also appends what it wrote here, stamped with ``valid_from``, the event
time at which that state holds (a fold's newest folded event, a round's time).
A read "as of t" takes, per chunk, the newest row with ``valid_from <= t``
(a tombstone row records a delete), the profile likewise, and the events with
``ts <= t`` that were not yet expired at ``t``.

Append-only: a replayed write appends the same rows again, and reads drop the
duplicates, so no ``merge_insert`` is paid on this path.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pyarrow as pa

from memory_store.lance.db import OpenTables, compact
from memory_store.lance.tier_rows import (
    CHUNK_KEY,
    PROFILE_SCHEMA,
    chunk_from_row,
    chunk_key,
    chunk_schema,
    chunks_to_table,
    profile_from_row,
    profiles_to_table,
)
from memory_store.lance.tier_tables import rows_for_users
from memory_store.store import UserKey
from memory_store.tiers import Delta, Polarity, PreferenceChunk, Profile

__all__ = [
    "CHUNK_HISTORY",
    "EXPIRED_EVENTS",
    "HISTORY_TABLES",
    "PROFILE_HISTORY",
    "LanceHistory",
    "StateWrite",
]

CHUNK_HISTORY = "chunk_history"
PROFILE_HISTORY = "profile_history"
EXPIRED_EVENTS = "expired_events"
HISTORY_TABLES = (CHUNK_HISTORY, PROFILE_HISTORY, EXPIRED_EVENTS)

_STAMP = [
    pa.field("valid_from", pa.float64(), nullable=False),
    pa.field("written_at", pa.float64(), nullable=False),
    pa.field("deleted", pa.bool_(), nullable=False),
]
_CHUNK_HISTORY_SCHEMA = pa.schema(list(chunk_schema(None)) + _STAMP)
_PROFILE_HISTORY_SCHEMA = pa.schema(list(PROFILE_SCHEMA) + _STAMP[:2])
_EXPIRED_AT = pa.field("expired_at", pa.float64(), nullable=False)


@dataclass(frozen=True, slots=True)
class StateWrite:
    """One user's merged delta in one store write, and the event time it holds from."""

    tenant: str
    user_id: str
    delta: Delta
    valid_from: float


class LanceHistory:
    """The three history tables on one connection; writes under the store's lock."""

    def __init__(self, db: Any, cleanup_older_than: timedelta) -> None:
        self._tables = OpenTables(db)
        self._open = self._tables.get
        self._cleanup_older_than = cleanup_older_than
        self._indexed: dict[str, set[str]] = {}

    def _append(self, name: str, rows: pa.Table) -> None:
        self._tables.create(name, rows.schema).add(rows)

    # -- writes --

    def record_state(self, writes: Sequence[StateWrite], written_at: float) -> None:
        """Append every chunk version, delete and profile these writes made."""
        chunks: list[pa.Table] = []
        profiles: list[pa.Table] = []
        for w in writes:
            deleted = set(w.delta.deletes)
            kept = [c for c in w.delta.upserts if c.chunk_id not in deleted]
            if kept:
                chunks.append(_stamped(chunks_to_table(kept, chunk_schema(None)), w, written_at))
            if deleted:
                chunks.append(_tombstones(w, sorted(deleted), written_at))
            if w.delta.profile is not None:
                profiles.append(_stamped(profiles_to_table([w.delta.profile]), w, written_at))
        if chunks:
            self._append(CHUNK_HISTORY, pa.concat_tables(chunks).cast(_CHUNK_HISTORY_SCHEMA))
        if profiles:
            table = pa.concat_tables(profiles).drop_columns(["deleted"])
            self._append(PROFILE_HISTORY, table.cast(_PROFILE_HISTORY_SCHEMA))

    def record_expired(self, rows: pa.Table, expired_at: Sequence[float]) -> None:
        """Keep events the live tier is about to drop, with the event time they expired at."""
        if rows.num_rows:
            self._append(EXPIRED_EVENTS, rows.append_column(_EXPIRED_AT, pa.array(expired_at)))

    def compact(self) -> None:
        """Index the per-user read keys and merge fragments (every write appends one)."""
        for name in HISTORY_TABLES:
            indexed = self._indexed.setdefault(name, set())
            compact(self._open(name), ("user_id", "tenant"), self._cleanup_older_than, indexed)

    # -- reads --

    def chunks_as_of(
        self, reads: Sequence[tuple[UserKey, float]]
    ) -> dict[tuple[UserKey, float], list[PreferenceChunk]]:
        """Each (user, t): the chunks the user had at event time ``t``."""
        rows = self._rows(CHUNK_HISTORY, reads)
        out: dict[tuple[UserKey, float], list[PreferenceChunk]] = {}
        for (key, t), mine in _per_read(rows, reads):
            latest: dict[str, dict[str, Any]] = {}
            for row in _in_write_order(r for r in mine if r["valid_from"] <= t):
                latest[row["chunk_id"]] = row
            out[(key, t)] = [chunk_from_row(r) for r in latest.values() if not r["deleted"]]
        return out

    def profiles_as_of(
        self, reads: Sequence[tuple[UserKey, float]]
    ) -> dict[tuple[UserKey, float], Profile]:
        """Each (user, t) that had a profile at ``t``: the newest one built by then."""
        rows = self._rows(PROFILE_HISTORY, reads)
        out: dict[tuple[UserKey, float], Profile] = {}
        for (key, t), mine in _per_read(rows, reads):
            held = [r for r in mine if r["valid_from"] <= t]
            if held:
                best = max(held, key=lambda r: (r["version"], r["valid_from"], r["written_at"]))
                out[(key, t)] = profile_from_row(best)
        return out

    def expired_rows(self, keys: Sequence[UserKey]) -> list[dict[str, Any]]:
        """These users' expired event rows (each with ``expired_at``)."""
        table = self._open(EXPIRED_EVENTS)
        return [] if table is None or not keys else rows_for_users(table, keys)

    def _rows(self, name: str, reads: Sequence[tuple[UserKey, float]]) -> list[dict[str, Any]]:
        table = self._open(name)
        keys = sorted({key for key, _ in reads})
        return [] if table is None or not keys else rows_for_users(table, keys)


def _stamped(table: pa.Table, write: StateWrite, written_at: float) -> pa.Table:
    n = table.num_rows
    table = table.append_column(_STAMP[0], pa.array([write.valid_from] * n, pa.float64()))
    table = table.append_column(_STAMP[1], pa.array([written_at] * n, pa.float64()))
    return table.append_column(_STAMP[2], pa.array([False] * n, pa.bool_()))


def _tombstones(write: StateWrite, chunk_ids: Sequence[str], written_at: float) -> pa.Table:
    """Rows that say "deleted here"; their other columns are placeholders never read."""
    blank: dict[str, Any] = {
        "facet": "", "key": "", "topic": "", "text": "", "embedding": [],
        "polarity": Polarity.LIKE.value, "strength": 0.0, "evidence": [], "evidence_ts": [],
        "evidence_count": 0, "first_seen": 0.0, "last_seen": 0.0, "version": 0, "through": -1,
        "aliases": [], "valid_from": write.valid_from, "written_at": written_at, "deleted": True,
    }  # fmt: skip
    rows = [
        blank | {CHUNK_KEY: chunk_key(write.tenant, cid), "chunk_id": cid,
                 "tenant": write.tenant, "user_id": write.user_id}
        for cid in chunk_ids
    ]  # fmt: skip
    return pa.Table.from_pylist(rows, schema=_CHUNK_HISTORY_SCHEMA)


def _per_read(
    rows: Iterable[dict[str, Any]], reads: Sequence[tuple[UserKey, float]]
) -> Iterable[tuple[tuple[UserKey, float], list[dict[str, Any]]]]:
    by_user: dict[UserKey, list[dict[str, Any]]] = {}
    for row in rows:
        by_user.setdefault((row["tenant"], row["user_id"]), []).append(row)
    for key, t in dict.fromkeys(reads):
        yield (key, t), by_user.get(key, [])


def _in_write_order(rows: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """Oldest write first; within one write a chunk has one row. Replayed copies collapse."""
    return sorted(rows, key=lambda r: (r["valid_from"], r["written_at"], r["deleted"]))
