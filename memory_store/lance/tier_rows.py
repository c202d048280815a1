"""The belief tiers (chunks, profiles, change log) to Arrow rows, and back.

Pure like ``rows.py``, so the mapping is tested without LanceDB. Keys join
tenant and id with a unit separator because LanceDB's primary key is one
column and chunk or user ids are unique only within a tenant. Embeddings are
stored as float32, so they come back rounded to float32 precision.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import pyarrow as pa

from memory_store.events import EventType, Interaction
from memory_store.keys import join_key
from memory_store.tiers import ChangeRecord, Polarity, PreferenceChunk, Profile

__all__ = [
    "CHANGE_KEY",
    "CHANGE_SCHEMA",
    "CHUNK_KEY",
    "PROFILE_KEY",
    "PROFILE_SCHEMA",
    "change_id",
    "changes_to_table",
    "chunk_from_row",
    "chunk_key",
    "chunk_schema",
    "chunks_to_table",
    "embedding_dimension",
    "interaction_from_row",
    "profile_from_row",
    "profile_key",
    "profiles_to_table",
]

CHUNK_KEY = "chunk_key"
PROFILE_KEY = "profile_key"
CHANGE_KEY = "change_id"

_SOURCE = pa.struct([pa.field("chunk_id", pa.string()), pa.field("version", pa.int64())])

PROFILE_SCHEMA = pa.schema(
    [
        pa.field(PROFILE_KEY, pa.string(), nullable=False),
        pa.field("tenant", pa.string(), nullable=False),
        pa.field("user_id", pa.string(), nullable=False),
        pa.field("narrative", pa.string(), nullable=False),
        pa.field("embedding", pa.list_(pa.float32()), nullable=False),
        pa.field("version", pa.int64(), nullable=False),
        pa.field("sources", pa.list_(_SOURCE), nullable=False),
        pa.field("built_at", pa.float64(), nullable=False),
    ]
)

CHANGE_SCHEMA = pa.schema(
    [
        pa.field(CHANGE_KEY, pa.string(), nullable=False),
        pa.field("tenant", pa.string(), nullable=False),
        pa.field("user_id", pa.string(), nullable=False),
        pa.field("op", pa.string(), nullable=False),
        pa.field("chunk_id", pa.string()),
        pa.field("before_strength", pa.float64()),
        pa.field("after_strength", pa.float64()),
        pa.field("event_ids", pa.list_(pa.string()), nullable=False),
        pa.field("plan_id", pa.string()),
        pa.field("detail", pa.string(), nullable=False),
        pa.field("written_at", pa.float64(), nullable=False),
    ]
)


def chunk_key(tenant: str, chunk_id: str) -> str:
    """The stored key of a chunk: tenant and chunk id, joined by a unit separator."""
    return join_key(tenant, chunk_id)


def profile_key(tenant: str, user_id: str) -> str:
    """The stored key of a profile: one row per tenant and user."""
    return join_key(tenant, user_id)


def embedding_dimension(chunks: Iterable[PreferenceChunk]) -> int | None:
    """The one embedding length all chunks share, or None (varying or empty: variable list)."""
    dims = {len(c.embedding) for c in chunks}
    return dims.pop() if len(dims) == 1 and 0 not in dims else None


def chunk_schema(dimension: int | None) -> pa.Schema:
    """Chunk rows; a fixed-size embedding when the dimension is known, else a variable list."""
    embedding = pa.list_(pa.float32()) if dimension is None else pa.list_(pa.float32(), dimension)
    return pa.schema(
        [
            pa.field(CHUNK_KEY, pa.string(), nullable=False),
            pa.field("chunk_id", pa.string(), nullable=False),
            pa.field("tenant", pa.string(), nullable=False),
            pa.field("user_id", pa.string(), nullable=False),
            pa.field("facet", pa.string(), nullable=False),
            pa.field("key", pa.string(), nullable=False),
            pa.field("topic", pa.string(), nullable=False),
            pa.field("text", pa.string(), nullable=False),
            pa.field("embedding", embedding, nullable=False),
            pa.field("polarity", pa.string(), nullable=False),
            pa.field("strength", pa.float64(), nullable=False),
            pa.field("evidence", pa.list_(pa.string()), nullable=False),
            pa.field("evidence_ts", pa.list_(pa.float64()), nullable=False),
            pa.field("evidence_count", pa.int64(), nullable=False),
            pa.field("first_seen", pa.float64(), nullable=False),
            pa.field("last_seen", pa.float64(), nullable=False),
            pa.field("version", pa.int64(), nullable=False),
            pa.field("through", pa.int64(), nullable=False),
            pa.field("aliases", pa.list_(pa.string()), nullable=False),
        ]
    )


def chunks_to_table(chunks: Sequence[PreferenceChunk], schema: pa.Schema) -> pa.Table:
    """One Arrow table, last occurrence of each chunk kept (a merge rejects duplicate keys)."""
    latest = {c.chunk_id: c for c in chunks}
    rows = [
        {
            CHUNK_KEY: chunk_key(c.tenant, c.chunk_id),
            "chunk_id": c.chunk_id,
            "tenant": c.tenant,
            "user_id": c.user_id,
            "facet": c.facet,
            "key": c.key,
            "topic": c.topic,
            "text": c.text,
            "embedding": list(c.embedding),
            "polarity": c.polarity.value,
            "strength": c.strength,
            "evidence": list(c.evidence),
            "evidence_ts": list(c.evidence_ts),
            "evidence_count": c.evidence_count,
            "first_seen": c.first_seen,
            "last_seen": c.last_seen,
            "version": c.version,
            "through": c.through,
            "aliases": list(c.aliases),
        }
        for c in latest.values()
    ]
    return pa.Table.from_pylist(rows, schema=schema)


def chunk_from_row(row: Mapping[str, Any]) -> PreferenceChunk:
    """A chunk from its stored row (extra columns such as the key are ignored)."""
    return PreferenceChunk(
        chunk_id=row["chunk_id"],
        tenant=row["tenant"],
        user_id=row["user_id"],
        facet=row["facet"],
        key=row["key"],
        topic=row["topic"],
        text=row["text"],
        embedding=tuple(float(x) for x in row["embedding"]),
        polarity=Polarity(row["polarity"]),
        strength=float(row["strength"]),
        evidence=tuple(row["evidence"]),
        evidence_ts=tuple(float(t) for t in row["evidence_ts"]),
        evidence_count=int(row["evidence_count"]),
        first_seen=float(row["first_seen"]),
        last_seen=float(row["last_seen"]),
        version=int(row["version"]),
        through=int(row["through"]),
        aliases=tuple(row["aliases"]),
    )


def profiles_to_table(profiles: Sequence[Profile]) -> pa.Table:
    """Profile rows keyed by tenant and user."""
    rows = [
        {
            PROFILE_KEY: profile_key(p.tenant, p.user_id),
            "tenant": p.tenant,
            "user_id": p.user_id,
            "narrative": p.narrative,
            "embedding": list(p.embedding),
            "version": p.version,
            "sources": [{"chunk_id": cid, "version": v} for cid, v in p.sources],
            "built_at": p.built_at,
        }
        for p in profiles
    ]
    return pa.Table.from_pylist(rows, schema=PROFILE_SCHEMA)


def profile_from_row(row: Mapping[str, Any]) -> Profile:
    """A profile from its stored row."""
    return Profile(
        tenant=row["tenant"],
        user_id=row["user_id"],
        narrative=row["narrative"],
        embedding=tuple(float(x) for x in row["embedding"]),
        version=int(row["version"]),
        sources=tuple((s["chunk_id"], int(s["version"])) for s in row["sources"]),
        built_at=float(row["built_at"]),
    )


def change_id(record: ChangeRecord, plan_id: str | None) -> str:
    """A change's id from its contents, so a replayed delta names the same changes."""
    content = [
        record.op.value,
        record.tenant,
        record.user_id,
        record.chunk_id,
        None if record.before_strength is None else repr(record.before_strength),
        None if record.after_strength is None else repr(record.after_strength),
        list(record.event_ids),
        plan_id,
        record.detail,
    ]
    raw = json.dumps(content, separators=(",", ":")).encode("utf-8")
    return hashlib.sha256(raw).hexdigest()


def changes_to_table(
    records: Sequence[ChangeRecord], plan_id: str | None, written_at: float
) -> pa.Table:
    """Change-log rows, one per distinct change; ``plan_id`` fills records that carry none."""
    rows: dict[str, dict[str, Any]] = {}
    for r in records:
        plan = r.plan_id if r.plan_id is not None else plan_id
        cid = change_id(r, plan)
        rows.setdefault(
            cid,
            {
                CHANGE_KEY: cid,
                "tenant": r.tenant,
                "user_id": r.user_id,
                "op": r.op.value,
                "chunk_id": r.chunk_id,
                "before_strength": r.before_strength,
                "after_strength": r.after_strength,
                "event_ids": list(r.event_ids),
                "plan_id": plan,
                "detail": r.detail,
                "written_at": written_at,
            },
        )
    return pa.Table.from_pylist(list(rows.values()), schema=CHANGE_SCHEMA)


def interaction_from_row(row: Mapping[str, Any]) -> Interaction:
    """An event-tier row back to the interaction it was written from.

    Rows were validated on the way in, so they are rebuilt without validating
    again (a maintenance pass reads tens of thousands of them).
    """
    context = row.get("context")
    return Interaction.model_construct(
        event_id=row["event_id"],
        tenant=row["tenant"],
        user_id=row["user_id"],
        item_id=row["item_id"],
        type=EventType(row["type"]),
        value=row["value"],
        ts=row["ts"],
        text=row["text"],
        context=None if context is None else json.loads(context),
    )
