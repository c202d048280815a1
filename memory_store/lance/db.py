"""The one LanceDB seam: connect, open or create a keyed table, compact.

Every table of the memory (events, chunks, profiles, changes, items, codes,
models, planner state, the write journal) is reached through these, so a
change of storage (an ``s3://`` URI and its options, a connection cache) or of
upkeep (which index, how long old versions stay) is made in one place.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Iterable, Mapping
from datetime import timedelta
from typing import Any, TypeVar

import lancedb
import pyarrow as pa
from lancedb.index import BTree

__all__ = [
    "CLEANUP_OLDER_THAN",
    "OpenTables",
    "compact",
    "configure_storage",
    "connect",
    "open_or_create",
    "open_or_create_keyed",
    "open_table",
    "retry_commit_conflicts",
]

T = TypeVar("T")

#: Versions older than this are removed by ``compact``; a reader holding an older
#: version (or a journal about to restore one) must not need it for longer.
CLEANUP_OLDER_THAN = timedelta(minutes=5)


#: LanceDB's caches, one bounded pair shared by every connection of a process. Left to
#: itself each connection gets its own (6 GB index + 1 GB metadata), and they grow with
#: every write of a long stream: the keeper's fold of ML-100k's 100k events left 177 MB in
#: the shared cache, growing linearly, at unchanged throughput; a writer replaying ML-1M
#: with six connections grew past 8 GB (not all of it cache).
INDEX_CACHE_BYTES = 1 << 30
METADATA_CACHE_BYTES = 512 << 20


@functools.cache
def _session() -> Any:
    return lancedb.Session(INDEX_CACHE_BYTES, METADATA_CACHE_BYTES)


# Endpoint and credentials for object-store URIs, set once per process (``configure_storage``).
_storage_options: dict[str, str] = {}


def configure_storage(options: Mapping[str, str]) -> None:
    """The object store's options (endpoint, region, credentials) for every later
    ``connect`` to an object-store URI in this process; local paths ignore them."""
    _storage_options.clear()
    _storage_options.update(options)


def connect(uri: str) -> Any:
    """A connection to the memory at ``uri`` (a path or an object-store URI).

    Reads see every commit at once (``read_consistency_interval=0``): the
    writer, the planner and the reader of one process share no cache to go stale.
    """
    options = dict(_storage_options) if "://" in uri else None
    if uri.startswith("s3://") and options is not None and "aws_access_key_id" not in options:
        # Never the default credential chain: it probes addresses off this machine.
        raise ValueError(f"no object-store credentials configured for {uri} "
                         "(BELIEFSTREAM_STORAGE_ACCESS_KEY_ID / _SECRET_ACCESS_KEY)")  # fmt: skip
    return lancedb.connect(uri, read_consistency_interval=timedelta(0), session=_session(),
                           storage_options=options)  # fmt: skip


def open_table(db: Any, name: str) -> Any | None:
    """The table if it exists, else ``None``.

    A table another worker is still creating can be listed before it opens; that
    case is retried, any other error is raised.
    """
    for attempt in range(20):
        if name not in db.list_tables().tables:
            return None
        try:
            return db.open_table(name)
        except ValueError as exc:
            if "was not found" not in str(exc):
                raise
        time.sleep(0.02 * (attempt + 1))
    raise RuntimeError(f"LanceDB table {name!r} is listed but does not open")


class OpenTables:
    """The tables of one connection, each opened once and then kept.

    A table missing at one look is looked for again at the next (another process
    may have created it since); ``create`` opens or creates it, keyed or not.
    """

    def __init__(self, db: Any) -> None:
        self.db = db
        self._tables: dict[str, Any] = {}

    def get(self, name: str) -> Any | None:
        if name not in self._tables:
            table = open_table(self.db, name)
            if table is None:
                return None
            self._tables[name] = table
        return self._tables[name]

    def create(self, name: str, schema: pa.Schema, key: str | None = None) -> Any:
        if name not in self._tables:
            self._tables[name] = (
                open_or_create(self.db, name, schema)
                if key is None
                else open_or_create_keyed(self.db, name, schema, key)
            )
        return self._tables[name]


def open_or_create(db: Any, name: str, schema: pa.Schema) -> Any:
    """Open ``name``, or create it empty with ``schema``; safe when several workers start."""
    existing = open_table(db, name)
    if existing is not None:
        return existing
    try:
        return db.create_table(name, schema=schema, exist_ok=True)
    except (ValueError, RuntimeError) as exc:
        # Another worker created it (and declared its key, or is committing it now).
        if "does not match existing table schema" not in str(exc) and not _is_conflict(exc):
            raise
        return _open_created(db, name)


def open_or_create_keyed(db: Any, name: str, schema: pa.Schema, key: str) -> Any:
    """Open ``name``, or create it with ``key`` declared as its primary key.

    The declared key lets ``merge_insert`` detect two writers inserting one key.
    Safe when several workers start at once: one declaration wins, the others
    see "already set", or a commit conflict after which they look again.
    """
    existing = open_table(db, name)
    if existing is not None:
        return existing
    table = open_or_create(db, name, schema)
    for attempt in range(20):
        try:
            table.set_unenforced_primary_key(key)
            return table
        except (ValueError, RuntimeError) as exc:
            if "already set" in str(exc) or "changed once set" in str(exc):
                return table
            if not _is_conflict(exc):
                raise
        time.sleep(0.02 * (attempt + 1))
        table = db.open_table(name)
    raise RuntimeError(f"could not declare the primary key of LanceDB table {name!r}")


def _open_created(db: Any, name: str) -> Any:
    """A table another worker has just created, once it opens."""
    for attempt in range(20):
        table = open_table(db, name)
        if table is not None:
            return table
        time.sleep(0.02 * (attempt + 1))
    raise RuntimeError(f"LanceDB table {name!r} was created elsewhere but does not open")


def compact(
    table: Any | None,
    columns: Iterable[str],
    cleanup_older_than: timedelta = CLEANUP_OLDER_THAN,
    indexed: set[str] | None = None,
) -> None:
    """Index ``columns`` (B-tree) where not yet indexed and merge the table's fragments.

    Nothing happens to a missing or empty table (an index needs rows). ``indexed``
    carries what is known to be indexed from one call to the next, so a writer
    that compacts often does not list the indices each time.
    """
    if table is None or table.count_rows() == 0:
        return
    known = indexed if indexed is not None else set()
    if not known:
        known.update(cfg.columns[0] for cfg in table.list_indices())
    for column in columns:
        if column not in known:
            table.create_index(column, config=BTree(), replace=True)
            known.add(column)
    table.optimize(cleanup_older_than=cleanup_older_than)


def retry_commit_conflicts(write: Callable[[], T], attempts: int = 10) -> T:
    """``write()``, again after a commit conflict with another writer (idempotent writes only).

    A worker declaring a new table's primary key commits while another one is already
    writing to it; LanceDB then refuses the writer's commit as incompatible.
    """
    for attempt in range(attempts):
        try:
            return write()
        except (ValueError, RuntimeError) as exc:
            if attempt == attempts - 1 or not _is_conflict(exc):
                raise
        time.sleep(0.02 * (attempt + 1))
    raise AssertionError("unreachable")


def _is_conflict(exc: Exception) -> bool:
    return "ncompatible transaction" in str(exc) or "onflict" in str(exc)
