"""The item catalogue: what extraction knows about the items users interact with.

Items arrive on their own topic, independently of the interactions about them,
so the catalogue is a table of its own (newest ``ts`` per tenant and item wins)
with a small in-process cache: the writer asks for the same few thousand items
in every batch, and a LanceDB point read costs milliseconds.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterable, Sequence
from datetime import timedelta
from typing import Any, Protocol

import pyarrow as pa

from memory_store.events import Item
from memory_store.keys import join_key
from memory_store.lance.db import (
    CLEANUP_OLDER_THAN,
    compact,
    connect,
    open_or_create_keyed,
    open_table,
)
from memory_store.lance.tier_tables import quote

__all__ = [
    "ITEM_SCHEMA",
    "ItemCatalogue",
    "LanceItemCatalogue",
    "item_from_row",
    "open_catalogue",
]

ITEMS_TABLE = "items"
ITEM_KEY = "item_key"
_IDS_PER_QUERY = 1000

ITEM_SCHEMA = pa.schema(
    [
        pa.field(ITEM_KEY, pa.string(), nullable=False),
        pa.field("tenant", pa.string(), nullable=False),
        pa.field("item_id", pa.string(), nullable=False),
        pa.field("title", pa.string(), nullable=False),
        pa.field("text", pa.string()),
        pa.field("attributes", pa.string(), nullable=False),
        pa.field("ts", pa.float64(), nullable=False),
    ]
)


class ItemCatalogue(Protocol):
    """Items by tenant and id; every read is filtered hard on the tenant."""

    def write_items(self, items: Sequence[Item]) -> int:
        """Store items, newest ``ts`` per (tenant, item id) winning; returns rows written."""
        ...

    def read_items(self, tenant: str, item_ids: Iterable[str]) -> dict[str, Item]:
        """The known items among ``item_ids`` of this tenant (unknown ids are left out)."""
        ...

    def compact(self) -> None:
        """Merge fragments and index the key; run by the single writer."""
        ...


def _key(tenant: str, item_id: str) -> str:
    return join_key(tenant, item_id)


def _to_table(items: Sequence[Item]) -> pa.Table:
    newest: dict[str, Item] = {}
    for item in items:
        key = _key(item.tenant, item.item_id)
        if key not in newest or newest[key].ts <= item.ts:
            newest[key] = item
    rows = [
        {
            ITEM_KEY: key,
            "tenant": i.tenant,
            "item_id": i.item_id,
            "title": i.title,
            "text": i.text,
            "attributes": json.dumps(i.attributes, sort_keys=True, default=str),
            "ts": i.ts,
        }
        for key, i in newest.items()
    ]
    return pa.Table.from_pylist(rows, schema=ITEM_SCHEMA)


def item_from_row(row: dict[str, Any]) -> Item:
    """A catalogue row as the item it stores."""
    return Item(
        tenant=row["tenant"],
        item_id=row["item_id"],
        title=row["title"],
        text=row["text"],
        attributes=json.loads(row["attributes"]),
        ts=row["ts"],
    )


class LanceItemCatalogue:
    """The catalogue on LanceDB; ``cache_ttl_s=None`` caches forever (for the single writer)."""

    def __init__(
        self,
        uri: str,
        cache_ttl_s: float | None = None,
        cleanup_older_than: timedelta = CLEANUP_OLDER_THAN,
    ) -> None:
        self._db = connect(uri)
        self._ttl = cache_ttl_s
        self._cleanup_older_than = cleanup_older_than
        self._table: Any = None
        self._cache: dict[tuple[str, str], tuple[Item, float]] = {}
        self._lock = threading.Lock()

    def _open(self, create: bool) -> Any:
        if self._table is None:
            if create:
                self._table = open_or_create_keyed(self._db, ITEMS_TABLE, ITEM_SCHEMA, ITEM_KEY)
            else:
                self._table = open_table(self._db, ITEMS_TABLE)
        return self._table

    def write_items(self, items: Sequence[Item]) -> int:
        if not items:
            return 0
        batch = _to_table(items)
        with self._lock:
            (
                self._open(create=True)
                .merge_insert(ITEM_KEY)
                .when_matched_update_all(where="target.ts <= source.ts")
                .when_not_matched_insert_all()
                .execute(batch)
            )
            now = time.monotonic()
            for item in map(item_from_row, batch.to_pylist()):
                cached = self._cache.get((item.tenant, item.item_id))
                if cached is None or cached[0].ts <= item.ts:
                    self._cache[(item.tenant, item.item_id)] = (item, now)
        return int(batch.num_rows)

    def read_items(self, tenant: str, item_ids: Iterable[str]) -> dict[str, Item]:
        now = time.monotonic()
        found: dict[str, Item] = {}
        missing: list[str] = []
        for item_id in dict.fromkeys(item_ids):
            cached = self._cache.get((tenant, item_id))
            if cached is not None and (self._ttl is None or now - cached[1] < self._ttl):
                found[item_id] = cached[0]
            else:
                missing.append(item_id)
        table = self._open(create=False)
        if not missing or table is None:
            return found
        for start in range(0, len(missing), _IDS_PER_QUERY):
            ids = ", ".join(quote(i) for i in missing[start : start + _IDS_PER_QUERY])
            where = f"tenant = {quote(tenant)} AND item_id IN ({ids})"
            rows = table.search().where(where).limit(_IDS_PER_QUERY).to_arrow().to_pylist()
            for item in map(item_from_row, rows):
                if item.tenant == tenant:
                    found[item.item_id] = item
                    self._cache[(tenant, item.item_id)] = (item, now)
        return found

    def compact(self) -> None:
        with self._lock:
            compact(self._open(create=False), (ITEM_KEY,), self._cleanup_older_than)


def open_catalogue(uri: str, cache_ttl_s: float | None = None) -> ItemCatalogue:
    """The item catalogue stored beside the memory at ``uri``."""
    return LanceItemCatalogue(uri, cache_ttl_s)
