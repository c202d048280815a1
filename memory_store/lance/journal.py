"""A writer's unit of work as one transaction over the memory's LanceDB tables.

LanceDB commits one table at a time, and one batch of the writer writes several:
events, chunks, profiles, the change log and the planner state. A crash between
two of those writes leaves a torn memory: a round's profiles without its change
records or its saved state, which a replay cannot reproduce (it sees the profiles
and decides otherwise). So before a unit of work the journal records each table's
version; after it, that the unit closed. A writer that starts and finds an open
unit restores every table to the recorded version: the unit's input was never
committed to Kafka, so it is delivered again and the unit runs again on the state
it first saw. Two small writes per unit, no copy of the data (a LanceDB restore
points at the old version's files).

A journal belongs to one writer (``name``): tables written by several writers at
once (scale-out) would need one journal per shard of them.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Iterator, Sequence
from typing import Any

import pyarrow as pa

from memory_store.lance.db import OpenTables, connect, open_or_create_keyed, open_table
from memory_store.lance.history import HISTORY_TABLES
from memory_store.lance.planner_state import STATE_TABLE
from memory_store.lance.store import EVENTS_TABLE
from memory_store.lance.tier_tables import CHANGES_TABLE, CHUNKS_TABLE, PROFILES_TABLE

__all__ = ["JOURNAL_TABLE", "MEMORY_TABLES", "WriteJournal"]

JOURNAL_TABLE = "write_journal"
# Every table a writer's batch or round writes (the catalogue's item upserts are
# idempotent on their own and outside it).
MEMORY_TABLES = (
    EVENTS_TABLE,
    CHUNKS_TABLE,
    PROFILES_TABLE,
    CHANGES_TABLE,
    STATE_TABLE,
    *HISTORY_TABLES,
)
_KEY = "writer"
_SCHEMA = pa.schema(
    [
        pa.field(_KEY, pa.string(), nullable=False),
        pa.field("versions", pa.string()),  # {table: version, or null if it did not exist}
        pa.field("open", pa.bool_()),
        pa.field("at", pa.float64()),
    ]
)


class WriteJournal:
    """Begin, commit, and roll back a torn unit of work of one writer."""

    def __init__(
        self, uri: str, name: str = "writer", tables: Sequence[str] = MEMORY_TABLES
    ) -> None:
        self._db = connect(uri)
        self._name = name
        self._names = tuple(tables)
        self._table = OpenTables(self._db).get
        self._journal: Any = None
        self._open = False

    def _write(self, versions: dict[str, int | None] | None) -> None:
        if self._journal is None:
            self._journal = open_or_create_keyed(self._db, JOURNAL_TABLE, _SCHEMA, _KEY)
        row = {_KEY: self._name, "versions": json.dumps(versions), "open": versions is not None,
               "at": time.time()}  # fmt: skip
        batch = pa.Table.from_pylist([row], schema=_SCHEMA)
        merge = self._journal.merge_insert(_KEY).when_matched_update_all()
        merge.when_not_matched_insert_all().execute(batch)

    def begin(self) -> None:
        """Record where every table stands: the point a torn unit returns to."""
        versions: dict[str, int | None] = {}
        for name in self._names:
            table = self._table(name)
            versions[name] = None if table is None else int(table.version)
        self._write(versions)
        self._open = True

    def commit(self) -> None:
        self._write(None)
        self._open = False

    @contextlib.contextmanager
    def unit(self) -> Iterator[None]:
        """Run the block as one unit: committed if it returns (a raise leaves it open,
        and the process is about to end: the next writer rolls it back). Nested units
        join the outer one."""
        if self._open:
            yield
            return
        self.begin()
        yield
        self.commit()

    def recover(self) -> list[str]:
        """Roll back a unit the last writer left open; the tables it restored."""
        self._journal = open_table(self._db, JOURNAL_TABLE)
        if self._journal is None:
            return []
        quoted = self._name.replace("'", "''")
        rows = self._journal.search().where(f"{_KEY} = '{quoted}'").to_list()
        if not rows or not rows[0]["open"]:
            return []
        restored = []
        for name, version in json.loads(rows[0]["versions"]).items():
            table = self._table(name)
            if table is None:
                continue
            if version is None:  # created inside the torn unit: empty it
                if table.count_rows() > 0:
                    table.delete("true")
                    restored.append(name)
            elif int(table.version) != version:
                table.restore(version)
                restored.append(name)
        self.commit()
        return restored
