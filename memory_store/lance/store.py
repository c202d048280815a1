"""LanceDB implementation of the memory store.

Measured on these machines (see the project notes): writes want ~1,000-row
batches, every commit adds a fragment that slows reads until ``optimize()``,
scalar BTREE indexes on the read keys make point reads ~5x faster, and
``merge_insert`` on a declared primary key detects concurrent inserts of the
same key instead of duplicating them.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from memory_store.lance.db import (
    CLEANUP_OLDER_THAN,
    compact,
    connect,
    open_or_create_keyed,
    retry_commit_conflicts,
)
from memory_store.lance.event_rows import (
    EVENT_KEY,
    EVENT_SCHEMA,
    event_key,
    events_to_table,
    time_then_stream_order,
)
from memory_store.lance.history import LanceHistory, StateWrite
from memory_store.lance.tier_rows import interaction_from_row
from memory_store.lance.tier_tables import (
    LanceTiers,
    all_rows,
    quote,
    rows_for_users,
    user_filter,
    user_keys,
)
from memory_store.store import (
    DEFAULT_EVENT_LIMIT,
    EventRecord,
    MemoryStore,
    UserDelta,
    UserKey,
    UserMemory,
    WriteResult,
)
from memory_store.tiers import Delta, UserSnapshot, check_owner

__all__ = ["LanceMemoryStore", "open_store"]

EVENTS_TABLE = "events"
_INDEXED_COLUMNS = (EVENT_KEY, "user_id", "tenant")


class LanceMemoryStore:
    """Memory tiers on LanceDB at a path or object-store URI."""

    def __init__(self, uri: str, cleanup_older_than: timedelta = CLEANUP_OLDER_THAN) -> None:
        self.uri = uri
        self._cleanup_older_than = cleanup_older_than
        self._db = connect(uri)
        self._events: Any = open_or_create_keyed(self._db, EVENTS_TABLE, EVENT_SCHEMA, EVENT_KEY)
        self._lock = threading.Lock()
        self._indexed: set[str] = set()
        self._tiers = LanceTiers(self._db, cleanup_older_than)
        self._history = LanceHistory(self._db, cleanup_older_than)

    def write_events(self, records: Sequence[EventRecord]) -> WriteResult:
        if not records:
            return WriteResult(0, 0)
        batch = events_to_table(records, ingested_at=time.time())
        merge = self._events.merge_insert(EVENT_KEY).when_not_matched_insert_all()
        with self._lock:  # the key makes a retried insert store each event once
            result = retry_commit_conflicts(lambda: merge.execute(batch))
        inserted = int(getattr(result, "num_inserted_rows", batch.num_rows))
        return WriteResult(received=len(records), inserted=inserted)

    def _user_events(self, tenant: str, user_id: str) -> tuple[int, list[dict[str, Any]]]:
        """A user's event count and rows, newest first."""
        rows = all_rows(self._events, user_filter(tenant, user_id))
        rows.sort(key=time_then_stream_order, reverse=True)
        return len(rows), rows

    def read_user(self, tenant: str, user_id: str, limit: int = 20) -> UserMemory:
        count, rows = self._user_events(tenant, user_id)
        chunks, profiles = self._tiers.read([(tenant, user_id)])
        strongest = sorted(
            chunks.get((tenant, user_id), []), key=lambda c: (-c.strength, c.chunk_id)
        )
        return UserMemory(
            tenant,
            user_id,
            count,
            rows[:limit],
            strongest,
            profiles.get((tenant, user_id)),
            self._tiers.read_changes(tenant, user_id, limit),
        )

    def read_snapshots(
        self, keys: Sequence[UserKey], event_limit: int = DEFAULT_EVENT_LIMIT
    ) -> dict[UserKey, UserSnapshot]:
        wanted = list(dict.fromkeys(keys))
        chunks, profiles = self._tiers.read(wanted)
        events = self._event_rows(wanted) if event_limit > 0 else {}
        snapshots: dict[UserKey, UserSnapshot] = {}
        for key in wanted:
            newest = sorted(events.get(key, ()), key=time_then_stream_order)
            snapshots[key] = UserSnapshot(
                key[0],
                key[1],
                tuple(chunks.get(key, ())),
                profiles.get(key),
                tuple(interaction_from_row(r) for r in newest[max(0, len(newest) - event_limit) :]),
            )
        return snapshots

    def _event_rows(
        self, keys: Sequence[UserKey], with_expired: bool = False
    ) -> dict[UserKey, list[dict[str, Any]]]:
        """These users' stored event rows (and the expired ones kept in history), by user."""
        rows = rows_for_users(self._events, keys) if keys else []
        if with_expired:
            rows += self._history.expired_rows(keys)
        out: dict[UserKey, list[dict[str, Any]]] = {}
        for row in rows:
            out.setdefault((row["tenant"], row["user_id"]), []).append(row)
        return out

    def read_event_records(self, keys: Sequence[UserKey]) -> dict[UserKey, list[EventRecord]]:
        out: dict[UserKey, list[tuple[tuple[int, int, int, float, str], EventRecord]]] = {}
        wanted = list(dict.fromkeys(keys))
        for row in rows_for_users(self._events, wanted) if wanted else ():
            partition, offset = int(row["source_partition"]), int(row["source_offset"])
            order = (1 if offset < 0 else 0, partition, offset, row["ts"], row["event_id"])
            record = EventRecord(interaction_from_row(row), partition, offset)
            out.setdefault((row["tenant"], row["user_id"]), []).append((order, record))
        return {
            key: [r for _, r in sorted(pairs, key=lambda p: p[0])] for key, pairs in out.items()
        }

    def write_deltas(self, deltas: Sequence[UserDelta], plan_id: str | None = None) -> None:
        merged: dict[UserKey, list[UserDelta]] = {}
        for item in deltas:
            check_owner(item.tenant, item.user_id, item.delta)
            merged.setdefault((item.tenant, item.user_id), []).append(item)
        writes = [
            StateWrite(t, u, Delta.merge(*(d.delta for d in ds)), max(d.valid_from() for d in ds))
            for (t, u), ds in merged.items()
        ]
        writes = [w for w in writes if not w.delta.is_empty or w.delta.changes]
        if not writes:
            return
        forget = {
            (w.tenant, w.user_id): (w.valid_from, sorted(set(w.delta.forget_event_ids)))
            for w in writes
            if w.delta.forget_event_ids
        }
        where = " OR ".join(
            f"({EVENT_KEY} IN ({', '.join(quote(event_key(t, e)) for e in ids)})"
            f" AND {user_filter(t, u)})"
            for (t, u), (_, ids) in forget.items()
        )
        with self._lock:
            self._tiers.write_state([(w.tenant, w.user_id, w.delta) for w in writes])
            self._history.record_state(writes, written_at=time.time())
            if forget:
                expiring = self._events.search().where(where).limit(None).to_arrow()
                at = [
                    forget[k][0]
                    for k in zip(
                        expiring["tenant"].to_pylist(), expiring["user_id"].to_pylist(), strict=True
                    )
                ]
                self._history.record_expired(expiring, at)
                self._events.delete(where)
            self._tiers.write_changes([w.delta for w in writes], plan_id)

    def read_snapshots_as_of(
        self, reads: Sequence[tuple[UserKey, float]], event_limit: int = DEFAULT_EVENT_LIMIT
    ) -> list[UserSnapshot]:
        wanted = list(dict.fromkeys(reads))
        keys = sorted({key for key, _ in wanted})
        chunks = self._history.chunks_as_of(wanted)
        profiles = self._history.profiles_as_of(wanted)
        events = self._event_rows(keys, with_expired=True) if event_limit > 0 else {}
        out: list[UserSnapshot] = []
        for key, t in reads:
            held = [
                r for r in events.get(key, ())
                if r["ts"] <= t and r.get("expired_at", float("inf")) > t
            ]  # fmt: skip
            held.sort(key=time_then_stream_order)
            newest = held[max(0, len(held) - event_limit) :]
            out.append(
                UserSnapshot(
                    key[0],
                    key[1],
                    tuple(sorted(chunks.get((key, t), ()), key=lambda c: c.chunk_id)),
                    profiles.get((key, t)),
                    tuple(interaction_from_row(r) for r in newest),
                )
            )
        return out

    def users_ingested_after(self, partition: int, after: float) -> dict[UserKey, int]:
        where = f"source_partition = {int(partition)} AND ingested_at > {float(after)!r}"
        columns = ["tenant", "user_id", "source_offset"]
        found = self._events.search().where(where).select(columns).limit(None).to_arrow()
        out: dict[UserKey, int] = {}
        for tenant, user_id, offset in zip(*(found[c].to_pylist() for c in columns), strict=True):
            key = (tenant, user_id)
            out[key] = min(offset, out.get(key, offset))
        return out

    def list_users(self, tenant: str | None = None) -> list[UserKey]:
        where = None if tenant is None else f"tenant = {quote(tenant)}"
        return sorted(user_keys(self._events, where) | self._tiers.users(where))

    def count_events(self, tenant: str | None = None) -> int:
        return int(self._events.count_rows(None if tenant is None else f"tenant = {quote(tenant)}"))

    def compact(self) -> None:
        with self._lock:
            self._tiers.compact()
            self._history.compact()
            compact(self._events, _INDEXED_COLUMNS, self._cleanup_older_than, self._indexed)


def open_store(uri: str) -> MemoryStore:
    """A store for ``uri``: a filesystem path or an object-store URI (s3://, gs://, az://)."""
    return LanceMemoryStore(uri)
