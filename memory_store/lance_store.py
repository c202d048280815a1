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

from memory_store.rows import EVENT_KEY, EVENT_SCHEMA, EventRecord, events_to_table
from memory_store.store import UserMemory, WriteResult

__all__ = ["LanceMemoryStore"]

EVENTS_TABLE = "events"
_INDEXED_COLUMNS = (EVENT_KEY, "user_id", "tenant")


def _quote(value: str) -> str:
    """A SQL string literal for a LanceDB filter."""
    return "'" + value.replace("'", "''") + "'"


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

    def _ensure_events_table(self) -> Any:
        """Open or create the events table; safe when several workers start at once."""
        if EVENTS_TABLE in self._db.list_tables().tables:
            return self._db.open_table(EVENTS_TABLE)
        table: Any = self._db.create_table(EVENTS_TABLE, schema=EVENT_SCHEMA, exist_ok=True)
        try:
            # Lets merge_insert detect two writers inserting the same key and retry.
            table.set_unenforced_primary_key(EVENT_KEY)
        except ValueError as exc:
            if "already set" not in str(exc):  # another worker declared it first
                raise
        return table

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

    def read_user(self, tenant: str, user_id: str, limit: int = 20) -> UserMemory:
        where = f"tenant = {_quote(tenant)} AND user_id = {_quote(user_id)}"
        count = self._events.count_rows(where)
        rows: list[dict[str, Any]] = []
        if count:
            table = self._events.search().where(where).limit(max(count, 1)).to_arrow()
            rows = sorted(table.to_pylist(), key=lambda r: (r["ts"], r["event_id"]), reverse=True)
        return UserMemory(tenant, user_id, count, rows[:limit])

    def count_events(self, tenant: str | None = None) -> int:
        return int(
            self._events.count_rows(None if tenant is None else f"tenant = {_quote(tenant)}")
        )

    def compact(self) -> None:
        with self._lock:
            if self._events.count_rows() == 0:
                return
            for column in _INDEXED_COLUMNS:
                if column not in self._indexed:
                    self._events.create_index(column, config=BTree(), replace=True)
                    self._indexed.add(column)
            self._events.optimize(cleanup_older_than=self._cleanup_older_than)
