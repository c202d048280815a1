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

import lancedb
from lancedb.index import BTree

from memory_store.lance_tiers import LanceTiers, create_keyed_table, quote, user_filter
from memory_store.rows import EVENT_KEY, EVENT_SCHEMA, EventRecord, event_key, events_to_table
from memory_store.store import DEFAULT_EVENT_LIMIT, UserMemory, WriteResult
from memory_store.tier_rows import interaction_from_row
from memory_store.tiers import Delta, UserSnapshot, check_owner

__all__ = ["LanceMemoryStore"]

EVENTS_TABLE = "events"
_INDEXED_COLUMNS = (EVENT_KEY, "user_id", "tenant")


class LanceMemoryStore:
    """Memory tiers on LanceDB at a path or object-store URI."""

    def __init__(self, uri: str, cleanup_older_than: timedelta = timedelta(minutes=5)) -> None:
        self.uri = uri
        self._cleanup_older_than = cleanup_older_than
        self._db = lancedb.connect(uri, read_consistency_interval=timedelta(0))
        self._events: Any
        self._events = self._ensure_events_table()
        self._lock = threading.Lock()
        self._indexed = {cfg.columns[0] for cfg in self._events.list_indices()}
        self._tiers = LanceTiers(self._db, cleanup_older_than)

    def _ensure_events_table(self) -> Any:
        """Open or create the events table; safe when several workers start at once."""
        if EVENTS_TABLE in self._db.list_tables().tables:
            return self._db.open_table(EVENTS_TABLE)
        # The declared key lets merge_insert detect two writers inserting the same key.
        return create_keyed_table(self._db, EVENTS_TABLE, EVENT_SCHEMA, EVENT_KEY)

    def write_events(self, records: Sequence[EventRecord]) -> WriteResult:
        if not records:
            return WriteResult(0, 0)
        batch = events_to_table(records, ingested_at=time.time())
        with self._lock:
            result = (
                self._events.merge_insert(EVENT_KEY).when_not_matched_insert_all().execute(batch)
            )
        inserted = int(getattr(result, "num_inserted_rows", batch.num_rows))
        return WriteResult(received=len(records), inserted=inserted)

    def _user_events(self, tenant: str, user_id: str) -> tuple[int, list[dict[str, Any]]]:
        """A user's event count and rows, newest first."""
        where = user_filter(tenant, user_id)
        count = self._events.count_rows(where)
        rows: list[dict[str, Any]] = []
        if count:
            table = self._events.search().where(where).limit(max(count, 1)).to_arrow()
            rows = sorted(table.to_pylist(), key=lambda r: (r["ts"], r["event_id"]), reverse=True)
        return count, rows

    def read_user(self, tenant: str, user_id: str, limit: int = 20) -> UserMemory:
        count, rows = self._user_events(tenant, user_id)
        return UserMemory(tenant, user_id, count, rows[:limit])

    def read_snapshot(
        self, tenant: str, user_id: str, event_limit: int = DEFAULT_EVENT_LIMIT
    ) -> UserSnapshot:
        chunks, profile = self._tiers.read(tenant, user_id)
        _, rows = self._user_events(tenant, user_id)
        events = tuple(interaction_from_row(r) for r in rows[: max(event_limit, 0)])
        return UserSnapshot(tenant, user_id, tuple(chunks), profile, events)

    def write_delta(
        self, tenant: str, user_id: str, delta: Delta, plan_id: str | None = None
    ) -> None:
        check_owner(tenant, user_id, delta)
        with self._lock:
            self._tiers.write_state(tenant, user_id, delta)
            if delta.forget_event_ids:
                keys = ", ".join(
                    quote(event_key(tenant, e)) for e in sorted(set(delta.forget_event_ids))
                )
                self._events.delete(f"{EVENT_KEY} IN ({keys}) AND {user_filter(tenant, user_id)}")
            self._tiers.write_changes(delta, plan_id)

    def count_events(self, tenant: str | None = None) -> int:
        return int(self._events.count_rows(None if tenant is None else f"tenant = {quote(tenant)}"))

    def compact(self) -> None:
        with self._lock:
            self._tiers.compact()
            if self._events.count_rows() == 0:
                return
            for column in _INDEXED_COLUMNS:
                if column not in self._indexed:
                    self._events.create_index(column, config=BTree(), replace=True)
                    self._indexed.add(column)
            self._events.optimize(cleanup_older_than=self._cleanup_older_than)
