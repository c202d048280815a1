"""The item codebook in LanceDB: each item's code address per facet, and the model states.

Same conventions as the memory tiers: opened by URI, every row carries its tenant
and every read filters on it, writes are ``merge_insert`` on a declared primary
key (a replayed batch changes nothing; an older model version never overwrites a
newer row). A code row keeps the item's facet input vector, so a reader can
re-score candidates exactly and re-encode an item without embedding it again.

A refresh writes new codes, deletes older rows, then writes the model row: the
newest model is the commit point; rows of other versions load as ``stale``.
"""

from __future__ import annotations

import io
import json
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import timedelta
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import torch
from torch import Tensor

from memory_store.codebook.index import Address, CodeIndex
from memory_store.codebook.item2vec import ItemVectors
from memory_store.codebook.model import FacetSpec, MultiFacetIndexModel
from memory_store.keys import join_key
from memory_store.lance.db import (
    CLEANUP_OLDER_THAN,
    compact,
    connect,
    open_or_create_keyed,
    open_table,
)
from memory_store.lance.tier_tables import quote

__all__ = ["CODES_TABLE", "MODELS_TABLE", "CodeRows", "CodebookStore", "StoredIndex", "StoredModel"]

CODES_TABLE = "item_codes"
MODELS_TABLE = "codebook_models"
_CODE_KEY = "code_key"
_MODEL_KEY = "model_key"
_BATCH = 50_000  # rows per merge_insert: large batches, few commits (see the store notes)

_CODES_SCHEMA = pa.schema(
    [
        pa.field(_CODE_KEY, pa.string(), nullable=False),
        pa.field("tenant", pa.string(), nullable=False),
        pa.field("facet", pa.string(), nullable=False),
        pa.field("item_id", pa.string(), nullable=False),
        pa.field("path", pa.list_(pa.int32()), nullable=False),
        pa.field("slot", pa.int32(), nullable=False),
        pa.field("seq", pa.int64(), nullable=False),  # insertion order: each bucket's read order
        pa.field("version", pa.int64(), nullable=False),  # model version that assigned the path
        pa.field("vector", pa.list_(pa.float32()), nullable=False),
        pa.field("assigned_at", pa.float64(), nullable=False),
    ]
)
_MODELS_SCHEMA = pa.schema(
    [
        pa.field(_MODEL_KEY, pa.string(), nullable=False),
        pa.field("tenant", pa.string(), nullable=False),
        pa.field("version", pa.int64(), nullable=False),
        pa.field("config", pa.string(), nullable=False),
        pa.field("state", pa.binary(), nullable=False),
        pa.field("created_at", pa.float64(), nullable=False),
    ]
)
_NEWER = "target.version <= source.version"


@dataclass(frozen=True)
class CodeRows:
    """One facet's rows: item ``i`` at ``(paths[i], slots[i])``, read order ``seq[i]``."""

    facet: str
    items: list[str]
    paths: Tensor  # [n, L] int
    slots: Tensor  # [n] int
    seq: Tensor  # [n] int
    vectors: Tensor  # [n, d] float: the facet's input vector
    versions: Tensor  # [n] int: the model version that assigned each path
    assigned_at: float = 0.0  # read rows: the newest write among them

    def take(self, mask: Tensor) -> CodeRows:
        items = [i for i, keep in zip(self.items, mask.tolist(), strict=True) if keep]
        return CodeRows(self.facet, items, self.paths[mask], self.slots[mask], self.seq[mask],
                        self.vectors[mask], self.versions[mask], self.assigned_at)  # fmt: skip


@dataclass(frozen=True)
class StoredModel:
    version: int
    model: MultiFacetIndexModel
    extra: dict[str, Any]  # the rest of the config saved with it (e.g. leaf_cap)


@dataclass(frozen=True)
class StoredIndex:
    """The index of one model version; rows of other versions are ``stale`` (re-encode them)."""

    index: CodeIndex
    rows: dict[str, CodeRows]  # per facet, the indexed rows
    stale: dict[str, CodeRows]
    next_seq: dict[str, int]
    assigned_at: float  # the newest row's write time: where to follow new rows from


def _list_array(matrix: np.ndarray[Any, Any], value_type: pa.DataType) -> pa.Array:
    n, width = matrix.shape
    offsets = pa.array(np.arange(0, (n + 1) * width, width, dtype=np.int32))
    return pa.ListArray.from_arrays(offsets, pa.array(matrix.reshape(-1), type=value_type))


def _matrix(column: pa.ChunkedArray, dtype: type[np.generic]) -> np.ndarray[Any, Any]:
    """A list column of equal-length rows as an ``[n, width]`` array."""
    array = column.combine_chunks()  # never empty: read_rows only sees facets with rows
    return np.asarray(array.flatten().to_numpy(zero_copy_only=False), dtype=dtype).reshape(
        len(array), -1
    )


class CodebookStore:
    """``item_codes`` and ``codebook_models`` beside the memory at ``uri``."""

    def __init__(self, uri: str, cleanup_older_than: timedelta = CLEANUP_OLDER_THAN) -> None:
        self._db = connect(uri)
        self._cleanup_older_than = cleanup_older_than
        self._tables: dict[str, Any] = {}

    def _open(self, name: str, schema: pa.Schema | None = None) -> Any:
        """The table if it exists; created with its primary key when ``schema`` is given."""
        if name not in self._tables:
            if schema is not None:
                key = _CODE_KEY if name == CODES_TABLE else _MODEL_KEY
                self._tables[name] = open_or_create_keyed(self._db, name, schema, key)
            elif (table := open_table(self._db, name)) is not None:
                self._tables[name] = table
        return self._tables.get(name)

    def save_model(
        self, tenant: str, version: int, model: MultiFacetIndexModel, **extra: Any
    ) -> None:
        buffer = io.BytesIO()
        torch.save(model.state_dict(), buffer)
        row = {
            _MODEL_KEY: join_key(tenant, f"{version:012d}"),
            "tenant": tenant,
            "version": version,
            "config": json.dumps({**model.config(), "extra": extra}, sort_keys=True),
            "state": buffer.getvalue(),
            "created_at": time.time(),
        }
        table = self._open(MODELS_TABLE, _MODELS_SCHEMA)
        batch = pa.Table.from_pylist([row], schema=_MODELS_SCHEMA)
        table.merge_insert(_MODEL_KEY).when_not_matched_insert_all().execute(batch)

    def load_model(self, tenant: str, version: int | None = None) -> StoredModel | None:
        """The tenant's newest model (or the given version); None if it has none."""
        version = self.latest_version(tenant) if version is None else version
        if version is None:
            return None
        where = f"tenant = {quote(tenant)} AND version = {int(version)}"
        rows = self._open(MODELS_TABLE).search().where(where).limit(None).to_list()
        row = next((r for r in rows if r["tenant"] == tenant), None)
        if row is None:
            return None
        config = json.loads(row["config"])
        facets = [FacetSpec(**spec) for spec in config.pop("facets")]
        extra = config.pop("extra")
        model = MultiFacetIndexModel(facets, **config)
        model.load_state_dict(torch.load(io.BytesIO(row["state"]), weights_only=True))
        model.eval()
        return StoredModel(int(row["version"]), model, extra)

    def save_codes(self, tenant: str, rows: Sequence[CodeRows]) -> int:
        """Upsert code rows (a newer version is never overwritten); returns rows written."""
        table = None
        written = 0
        now = time.time()
        for part in rows:
            for start in range(0, len(part.items), _BATCH):
                items = part.items[start : start + _BATCH]
                cut = slice(start, start + len(items))
                batch = pa.Table.from_arrays(
                    [
                        pa.array([join_key(tenant, part.facet, i) for i in items]),
                        pa.array([tenant] * len(items)),
                        pa.array([part.facet] * len(items)),
                        pa.array(items),
                        _list_array(part.paths[cut].numpy().astype(np.int32), pa.int32()),
                        pa.array(part.slots[cut].numpy().astype(np.int32)),
                        pa.array(part.seq[cut].numpy().astype(np.int64)),
                        pa.array(part.versions[cut].numpy().astype(np.int64)),
                        _list_array(part.vectors[cut].numpy().astype(np.float32), pa.float32()),
                        pa.array(np.full(len(items), now)),
                    ],
                    schema=_CODES_SCHEMA,
                )
                table = table or self._open(CODES_TABLE, _CODES_SCHEMA)
                merge = table.merge_insert(_CODE_KEY).when_matched_update_all(where=_NEWER)
                merge.when_not_matched_insert_all().execute(batch)
                written += len(items)
        return written

    def save_index(
        self, tenant: str, version: int, index: CodeIndex, vectors: Mapping[str, ItemVectors[str]]
    ) -> int:
        """Every item of ``index`` at ``version``, then drop the tenant's older rows."""
        rows: list[CodeRows] = []
        for facet, facet_vectors in vectors.items():
            entries = index.entries(tenant, facet)
            position = facet_vectors.index()
            items = [item for item, _ in entries]
            rows.append(
                CodeRows(
                    facet,
                    items,
                    torch.tensor([a.path for _, a in entries], dtype=torch.long),
                    torch.tensor([a.slot for _, a in entries], dtype=torch.long),
                    torch.arange(len(entries)),
                    facet_vectors.vectors[[position[i] for i in items]],
                    torch.full((len(items),), version, dtype=torch.long),
                )
            )
        written = self.save_codes(tenant, rows)
        table = self._open(CODES_TABLE)
        if table is not None:
            table.delete(f"tenant = {quote(tenant)} AND version < {int(version)}")
        return written

    def read_rows(self, tenant: str, since: float | None = None) -> dict[str, CodeRows]:
        """The tenant's rows (written after ``since``), per facet in ``seq`` order."""
        table = self._open(CODES_TABLE)
        if table is None:
            return {}
        where = f"tenant = {quote(tenant)}" + (
            "" if since is None else f" AND assigned_at > {since!r}"
        )
        data = table.search().where(where).limit(None).to_arrow()
        data = data.filter(pc.equal(data["tenant"], tenant))  # hard filter, again
        facets = data["facet"].to_numpy(zero_copy_only=False)
        out: dict[str, CodeRows] = {}
        for facet in sorted(set(facets.tolist())):
            rows = data.filter(pa.array(facets == facet)).sort_by("seq")
            out[facet] = CodeRows(
                facet,
                rows["item_id"].to_pylist(),
                torch.from_numpy(_matrix(rows["path"], np.int64).copy()),
                torch.from_numpy(rows["slot"].to_numpy().astype(np.int64)),
                torch.from_numpy(rows["seq"].to_numpy().astype(np.int64)),
                torch.from_numpy(_matrix(rows["vector"], np.float32).copy()),
                torch.from_numpy(rows["version"].to_numpy().astype(np.int64)),
                float(pc.max(rows["assigned_at"]).as_py()),
            )
        return out

    def load_index(
        self, tenant: str, version: int, *, levels: int, codebook_size: int, leaf_cap: int
    ) -> StoredIndex:
        """Rebuild the tenant's ``CodeIndex`` of ``version`` from its rows, in their order."""
        index = CodeIndex(levels, codebook_size, leaf_cap=leaf_cap)
        stored = StoredIndex(index, {}, {}, {}, 0.0)
        for facet, rows in self.read_rows(tenant).items():
            current = rows.versions == version
            kept = rows.take(current)
            addresses = (
                Address(tuple(p), s)
                for p, s in zip(kept.paths.tolist(), kept.slots.tolist(), strict=True)
            )
            index.restore(tenant, facet, zip(kept.items, addresses, strict=True))
            stored.rows[facet], stored.stale[facet] = kept, rows.take(~current)
            stored.next_seq[facet] = int(rows.seq.max()) + 1 if rows.items else 0
        assigned = [r.assigned_at for r in stored.rows.values()] + [
            r.assigned_at for r in stored.stale.values()
        ]
        return replace(stored, assigned_at=max(assigned, default=0.0))

    def latest_version(self, tenant: str) -> int | None:
        """The version of the tenant's newest saved model, without loading it."""
        table = self._open(MODELS_TABLE)
        if table is None:
            return None
        rows = table.search().where(f"tenant = {quote(tenant)}").select(["tenant", "version"])
        versions = [r["version"] for r in rows.limit(None).to_list() if r["tenant"] == tenant]
        return max(versions, default=None)

    def compact(self) -> None:
        """Index the keys and merge fragments; run by the single writer, now and then."""
        for name, columns in ((CODES_TABLE, (_CODE_KEY, "tenant")), (MODELS_TABLE, ("tenant",))):
            compact(self._open(name), columns, self._cleanup_older_than)
