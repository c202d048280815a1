"""Durable per-user planner state: the writer's operation clocks and deferred operations.

The planner's summary needs, per user, how many events arrived since each
operation last ran; a deferred "after N events" operation needs the count at
which it comes due. Both live in the writer's memory and would be lost with it,
so they are saved here at each planner round and loaded the first time a user
is seen after a start. The store keeps each user's state as one opaque JSON
document (the planner owns its shape); a save overwrites, so a replayed save
changes nothing.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping, Sequence
from datetime import timedelta
from typing import Any, Protocol

import pyarrow as pa

from memory_store.keys import join_key
from memory_store.lance.db import (
    CLEANUP_OLDER_THAN,
    compact,
    connect,
    open_or_create_keyed,
    open_table,
)
from memory_store.lance.tier_tables import rows_for_users
from memory_store.store import UserKey

__all__ = ["STATE_TABLE", "InMemoryPlannerState", "PlannerStateStore", "open_planner_state"]

STATE_TABLE = "planner_state"
_KEY = "state_key"
_SCHEMA = pa.schema(
    [
        pa.field(_KEY, pa.string(), nullable=False),
        pa.field("tenant", pa.string(), nullable=False),
        pa.field("user_id", pa.string(), nullable=False),
        pa.field("state", pa.string(), nullable=False),
        pa.field("saved_at", pa.float64(), nullable=False),
    ]
)


class PlannerStateStore(Protocol):
    """Per-user planner state documents, read and written in bulk, filtered on tenant and user."""

    def load(self, keys: Sequence[UserKey]) -> dict[UserKey, str]:
        """The saved documents of these users; users never saved are absent."""
        ...

    def save(self, states: Mapping[UserKey, str]) -> None:
        """Overwrite these users' documents in one write."""
        ...

    def compact(self) -> None:
        """Merge fragments and index the read keys; run by the single writer."""
        ...


def _state_key(key: UserKey) -> str:
    return join_key(*key)


class LancePlannerState:
    """Planner state in a LanceDB table next to the memory tiers (same URI)."""

    def __init__(self, uri: str, cleanup_older_than: timedelta = CLEANUP_OLDER_THAN) -> None:
        self._db = connect(uri)
        self._table: Any = None
        self._lock = threading.Lock()
        self._cleanup_older_than = cleanup_older_than
        self._indexed: set[str] = set()

    def _open(self, create: bool) -> Any:
        if self._table is None:
            if create:
                self._table = open_or_create_keyed(self._db, STATE_TABLE, _SCHEMA, _KEY)
            else:
                self._table = open_table(self._db, STATE_TABLE)
        return self._table

    def load(self, keys: Sequence[UserKey]) -> dict[UserKey, str]:
        table = self._open(create=False)
        if table is None or not keys:
            return {}
        return {(r["tenant"], r["user_id"]): r["state"] for r in rows_for_users(table, keys)}

    def save(self, states: Mapping[UserKey, str]) -> None:
        if not states:
            return
        now = time.time()
        batch = pa.Table.from_pylist(
            [
                {_KEY: _state_key(k), "tenant": k[0], "user_id": k[1], "state": s, "saved_at": now}
                for k, s in states.items()
            ],
            schema=_SCHEMA,
        )
        with self._lock:
            table = self._open(create=True)
            table.merge_insert(
                _KEY
            ).when_matched_update_all().when_not_matched_insert_all().execute(batch)

    def compact(self) -> None:
        with self._lock:
            table = self._open(create=False)
            compact(table, ("user_id", "tenant"), self._cleanup_older_than, self._indexed)


class InMemoryPlannerState:
    """The same contract in a dict: for tests and for runs that need no restart."""

    def __init__(self) -> None:
        self.saved: dict[UserKey, str] = {}
        self.saves = 0

    def load(self, keys: Sequence[UserKey]) -> dict[UserKey, str]:
        return {k: self.saved[k] for k in keys if k in self.saved}

    def save(self, states: Mapping[UserKey, str]) -> None:
        if states:
            self.saves += 1
            self.saved.update(states)

    def compact(self) -> None:
        return None


def open_planner_state(uri: str) -> PlannerStateStore:
    """The planner state for the memory at ``uri`` (a path or an object-store URI)."""
    return LancePlannerState(uri)
