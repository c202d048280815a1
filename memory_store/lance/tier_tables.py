"""The preference, profile and change-log tables of the LanceDB store.

Tables are created on first write: the chunk table's fixed-size embedding
column needs a dimension, and only the first chunks tell it. Every write is a
``merge_insert`` on a declared primary key, guarded by the row's version, so a
replayed delta (a batch can commit without its writer hearing it) changes
nothing and an older chunk version never overwrites a newer one.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from datetime import timedelta
from typing import Any

import pyarrow as pa

from memory_store.lance.db import OpenTables, compact
from memory_store.lance.tier_rows import (
    CHANGE_KEY,
    CHANGE_SCHEMA,
    CHUNK_KEY,
    PROFILE_KEY,
    PROFILE_SCHEMA,
    changes_to_table,
    chunk_from_row,
    chunk_key,
    chunk_schema,
    chunks_to_table,
    embedding_dimension,
    profile_from_row,
    profiles_to_table,
)
from memory_store.tiers import Delta, Operation, PreferenceChunk, Profile

__all__ = [
    "CHANGES_TABLE",
    "CHUNKS_TABLE",
    "PROFILES_TABLE",
    "LanceTiers",
    "all_rows",
    "quote",
    "rows_for_users",
    "user_filter",
    "user_keys",
    "users_filter",
]

CHUNKS_TABLE = "chunks"
PROFILES_TABLE = "profiles"
CHANGES_TABLE = "changes"
_KEYS = {CHUNKS_TABLE: CHUNK_KEY, PROFILES_TABLE: PROFILE_KEY, CHANGES_TABLE: CHANGE_KEY}
_INDEXED = {
    CHUNKS_TABLE: (CHUNK_KEY, "user_id", "tenant"),
    PROFILES_TABLE: (PROFILE_KEY, "tenant", "user_id"),
    CHANGES_TABLE: (CHANGE_KEY, "tenant", "user_id"),
}
_NEWER = "target.version < source.version"
_USERS_PER_QUERY = 500
_OP_ORDER = {op.value: n for n, op in enumerate(Operation)}


def quote(value: str) -> str:
    """A SQL string literal for a LanceDB filter."""
    return "'" + value.replace("'", "''") + "'"


def user_filter(tenant: str, user_id: str) -> str:
    """The hard tenant-and-user filter every per-user read and delete carries."""
    return f"tenant = {quote(tenant)} AND user_id = {quote(user_id)}"


def users_filter(keys: Iterable[tuple[str, str]]) -> str:
    """The hard filter for many users: per tenant, ``user_id IN (...)``."""
    by_tenant: dict[str, set[str]] = {}
    for tenant, user_id in keys:
        by_tenant.setdefault(tenant, set()).add(user_id)
    if not by_tenant:
        raise ValueError("users_filter needs at least one user")
    return " OR ".join(
        f"(tenant = {quote(t)} AND user_id IN ({', '.join(quote(u) for u in sorted(users))}))"
        for t, users in sorted(by_tenant.items())
    )


def all_rows(table: Any, where: str) -> list[dict[str, Any]]:
    """Every row matching ``where`` (shared with the event tier)."""
    return _rows(table, where)


def rows_for_users(table: Any, keys: Sequence[tuple[str, str]]) -> list[dict[str, Any]]:
    """Rows of these users only, read in slices so a filter never grows unbounded."""
    wanted = set(keys)
    ordered = sorted(wanted)
    out: list[dict[str, Any]] = []
    for start in range(0, len(ordered), _USERS_PER_QUERY):
        rows = _rows(table, users_filter(ordered[start : start + _USERS_PER_QUERY]))
        out.extend(r for r in rows if (r["tenant"], r["user_id"]) in wanted)
    return out


def user_keys(table: Any, where: str | None) -> set[tuple[str, str]]:
    """The distinct (tenant, user_id) of a table's rows (two columns read, not the rows)."""
    query = table.search().select(["tenant", "user_id"]).limit(None)
    if where is not None:
        query = query.where(where)
    cols = query.to_arrow()
    return set(zip(cols["tenant"].to_pylist(), cols["user_id"].to_pylist(), strict=True))


def _rows(table: Any, where: str) -> list[dict[str, Any]]:
    """All rows matching ``where``, in one query (``limit(None)``: no count-then-read race)."""
    rows: list[dict[str, Any]] = table.search().where(where).limit(None).to_arrow().to_pylist()
    return rows


class LanceTiers:
    """Chunks, profiles and changes on one LanceDB connection; writes under the caller's lock."""

    def __init__(self, db: Any, cleanup_older_than: timedelta) -> None:
        self._tables = OpenTables(db)
        self._open = self._tables.get
        self._cleanup_older_than = cleanup_older_than
        self._indexed: dict[str, set[str]] = {}

    def _ensure(self, name: str, schema: pa.Schema) -> Any:
        """Open or create a table with its primary key; safe when several writers start."""
        return self._tables.create(name, schema, _KEYS[name])

    def read(
        self, keys: Sequence[tuple[str, str]]
    ) -> tuple[dict[tuple[str, str], list[PreferenceChunk]], dict[tuple[str, str], Profile]]:
        """These users' chunks and profiles, filtered hard on tenant and user."""
        chunks: dict[tuple[str, str], list[PreferenceChunk]] = {}
        profiles: dict[tuple[str, str], Profile] = {}
        if not keys:
            return chunks, profiles
        chunks_table = self._open(CHUNKS_TABLE)
        if chunks_table is not None:
            for row in rows_for_users(chunks_table, keys):
                chunks.setdefault((row["tenant"], row["user_id"]), []).append(chunk_from_row(row))
        profiles_table = self._open(PROFILES_TABLE)
        if profiles_table is not None:
            for row in rows_for_users(profiles_table, keys):
                profile = profile_from_row(row)
                key = (profile.tenant, profile.user_id)
                if key not in profiles or profiles[key].version < profile.version:
                    profiles[key] = profile
        return chunks, profiles

    def users(self, where: str | None) -> set[tuple[str, str]]:
        """(tenant, user_id) of everyone with chunks or a profile (``where``: a tenant filter)."""
        out: set[tuple[str, str]] = set()
        for name in (CHUNKS_TABLE, PROFILES_TABLE):
            table = self._open(name)
            if table is not None:
                out |= user_keys(table, where)
        return out

    def read_changes(self, tenant: str, user_id: str, limit: int) -> list[dict[str, Any]]:
        """The user's latest ``limit`` change-log rows, newest first."""
        table = self._open(CHANGES_TABLE)
        if table is None or limit <= 0:
            return []
        rows = _rows(table, user_filter(tenant, user_id))
        # One write applies its operations in lifecycle order: the later operation is newer.
        rows.sort(key=lambda r: (-r["written_at"], -_OP_ORDER.get(r["op"], 0), r["chunk_id"] or ""))
        return rows[:limit]

    def write_state(self, deltas: Sequence[tuple[str, str, Delta]]) -> None:
        """Chunk upserts, then deletes (a delete wins, as in tiers.apply_delta), then profiles.

        Each is one write for all users; every delete also carries its owner's filter.
        """
        upserts: list[PreferenceChunk] = []
        deletes: list[str] = []
        profiles: list[Profile] = []
        for tenant, user_id, delta in deltas:
            deleted = set(delta.deletes)
            upserts += [c for c in delta.upserts if c.chunk_id not in deleted]
            if deleted:
                keys = ", ".join(quote(chunk_key(tenant, cid)) for cid in sorted(deleted))
                deletes.append(f"({CHUNK_KEY} IN ({keys}) AND {user_filter(tenant, user_id)})")
            if delta.profile is not None:
                profiles.append(delta.profile)
        if upserts:
            self._upsert_chunks(upserts)
        table = self._open(CHUNKS_TABLE)
        if deletes and table is not None:
            table.delete(" OR ".join(deletes))
        if profiles:
            table = self._ensure(PROFILES_TABLE, PROFILE_SCHEMA)
            (
                table.merge_insert(PROFILE_KEY)
                .when_matched_update_all(where=_NEWER)
                .when_not_matched_insert_all()
                .execute(profiles_to_table(profiles))
            )

    def write_changes(self, deltas: Sequence[Delta], plan_id: str | None) -> None:
        """Append the deltas' change records once each; written last so the log trails the state."""
        changes = [record for delta in deltas for record in delta.changes]
        if changes:
            table = self._ensure(CHANGES_TABLE, CHANGE_SCHEMA)
            batch = changes_to_table(changes, plan_id, written_at=time.time())
            table.merge_insert(CHANGE_KEY).when_not_matched_insert_all().execute(batch)

    def _upsert_chunks(self, chunks: Sequence[PreferenceChunk]) -> None:
        """Insert new chunks, update stored ones only with a newer version."""
        table = self._open(CHUNKS_TABLE)
        if table is None:
            table = self._ensure(CHUNKS_TABLE, chunk_schema(embedding_dimension(chunks)))
        schema: pa.Schema = table.schema
        embedding = schema.field("embedding").type
        if pa.types.is_fixed_size_list(embedding):
            wrong = {len(c.embedding) for c in chunks} - {embedding.list_size}
            if wrong:
                raise ValueError(
                    f"chunk embeddings of dimension {sorted(wrong)} in a table of "
                    f"dimension {embedding.list_size}"
                )
        (
            table.merge_insert(CHUNK_KEY)
            .when_matched_update_all(where=_NEWER)
            .when_not_matched_insert_all()
            .execute(chunks_to_table(chunks, schema))
        )

    def compact(self) -> None:
        """Index the read keys of every non-empty table and merge its fragments."""
        for name, columns in _INDEXED.items():
            indexed = self._indexed.setdefault(name, set())
            compact(self._open(name), columns, self._cleanup_older_than, indexed)
