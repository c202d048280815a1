"""Validated events to the event tier's Arrow rows, and back.

The mapping is pure so it can be tested without LanceDB; it also removes
duplicates inside one batch, since a merge keyed on the event id only
deduplicates against rows already stored.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import pyarrow as pa
from pydantic_core import to_json

from memory_store.keys import join_key
from memory_store.store import EventRecord

__all__ = ["EVENT_KEY", "EVENT_SCHEMA", "event_key", "events_to_table", "time_then_stream_order"]

# LanceDB's primary key is one column, and an event id is unique only within its tenant.
EVENT_KEY = "event_key"

EVENT_SCHEMA = pa.schema(
    [
        pa.field(EVENT_KEY, pa.string(), nullable=False),
        pa.field("tenant", pa.string(), nullable=False),
        pa.field("event_id", pa.string(), nullable=False),
        pa.field("user_id", pa.string(), nullable=False),
        pa.field("item_id", pa.string(), nullable=False),
        pa.field("type", pa.string(), nullable=False),
        pa.field("value", pa.float64()),
        pa.field("ts", pa.float64(), nullable=False),
        pa.field("text", pa.string()),
        pa.field("context", pa.string()),
        pa.field("source_partition", pa.int32(), nullable=False),
        pa.field("source_offset", pa.int64(), nullable=False),
        pa.field("ingested_at", pa.float64(), nullable=False),
    ]
)


def event_key(tenant: str, event_id: str) -> str:
    """The stored key of an event: tenant and id, joined by a unit separator."""
    return join_key(tenant, event_id)


def time_then_stream_order(row: Mapping[str, Any]) -> tuple[float, bool, int, int, str]:
    """Sort key of a user's event rows: by event time, and within one second in the
    order the user acted, which is their stream order (one user's events share a
    partition); events stored without a source position follow, by id. Ordering ties
    by id instead reorders real sequences (on MovieLens the id holds the title)."""
    offset = int(row["source_offset"])
    return (row["ts"], offset < 0, int(row["source_partition"]), offset, row["event_id"])


def events_to_table(records: Sequence[EventRecord], ingested_at: float) -> pa.Table:
    """One Arrow table for a batch, first occurrence of each (tenant, event_id) kept."""
    seen: set[str] = set()
    cols: dict[str, list[Any]] = {name: [] for name in EVENT_SCHEMA.names}
    for rec in records:
        ev = rec.event
        key = event_key(ev.tenant, ev.event_id)
        if key in seen:
            continue
        seen.add(key)
        cols[EVENT_KEY].append(key)
        cols["tenant"].append(ev.tenant)
        cols["event_id"].append(ev.event_id)
        cols["user_id"].append(ev.user_id)
        cols["item_id"].append(ev.item_id)
        cols["type"].append(ev.type.value)
        cols["value"].append(ev.value)
        cols["ts"].append(ev.ts)
        cols["text"].append(ev.text)
        cols["context"].append(None if ev.context is None else to_json(ev.context).decode())
        cols["source_partition"].append(rec.partition)
        cols["source_offset"].append(rec.offset)
        cols["ingested_at"].append(ingested_at)
    return pa.Table.from_pydict(cols, schema=EVENT_SCHEMA)
