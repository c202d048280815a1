"""The serving structure: code path → item ids, per (tenant, facet); no ANN at query time.

Collisions: a leaf (full path) holds at most ``leaf_cap`` items in its primary
sub-leaf; further items go to overflow sub-leaves ``1, 2, ...`` of the same path,
so an item's address is ``(path, slot)`` and no bucket exceeds the cap. At build
time the items nearest their code (lowest quantization error) fill the primary
sub-leaf; in real time a new item takes the first sub-leaf with room, so no
existing item is ever displaced. Candidate generation reads every query path's
primary sub-leaf before any overflow, so one hot leaf cannot crowd out the rest.

Tenants never share a table: every lookup is keyed by tenant first.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from torch import Tensor

__all__ = ["Address", "CodeIndex", "LeafStats", "Path", "PathEncoder", "as_paths"]

Path = tuple[int, ...]


class PathEncoder(Protocol):
    """What the index needs of a model: current-codebook paths for new items."""

    def encode(self, facet: str, x: Tensor) -> Tensor: ...


@dataclass(frozen=True)
class Address:
    path: Path
    slot: int  # 0: primary sub-leaf; k ≥ 1: k-th overflow sub-leaf


@dataclass(frozen=True)
class LeafStats:
    leaves: int
    items: int
    mean: float
    p50: int
    p90: int
    p99: int
    max: int
    overflow_items: int  # items not in their leaf's primary sub-leaf


def as_paths(codes: Tensor | Sequence[Sequence[int]]) -> list[Path]:
    rows = codes.tolist() if isinstance(codes, Tensor) else codes
    return [tuple(int(c) for c in row) for row in rows]


@dataclass
class _Table:
    """One (tenant, facet): leaves split into capped sub-leaves, plus every proper prefix."""

    address: dict[str, Address] = field(default_factory=dict)
    leaves: dict[Path, list[dict[str, None]]] = field(default_factory=dict)
    prefixes: dict[Path, dict[str, None]] = field(default_factory=dict)

    def insert(self, item: str, path: Path, cap: int, slot: int | None = None) -> Address:
        """Into the first sub-leaf with room, or at a known ``slot`` (restoring a saved index)."""
        subs = self.leaves.setdefault(path, [])
        if slot is None:
            slot = next((i for i, sub in enumerate(subs) if len(sub) < cap), len(subs))
        subs.extend({} for _ in range(slot + 1 - len(subs)))
        subs[slot][item] = None
        for depth in range(1, len(path)):
            self.prefixes.setdefault(path[:depth], {})[item] = None
        self.address[item] = Address(path, slot)
        return self.address[item]

    def remove(self, item: str) -> None:
        addr = self.address.pop(item, None)
        if addr is None:
            return
        subs = self.leaves[addr.path]
        del subs[addr.slot][item]
        while subs and not subs[-1]:
            subs.pop()
        if not subs:
            del self.leaves[addr.path]
        for depth in range(1, len(addr.path)):
            bucket = self.prefixes[addr.path[:depth]]
            del bucket[item]
            if not bucket:
                del self.prefixes[addr.path[:depth]]


class CodeIndex:
    """Item addresses for every (tenant, facet), and candidate generation from code paths."""

    def __init__(
        self,
        levels: int,
        codebook_size: int,
        *,
        leaf_cap: int = 64,
        encoder: PathEncoder | None = None,
    ) -> None:
        if leaf_cap < 1:
            raise ValueError("leaf_cap must be at least 1")
        self.levels = levels
        self.codebook_size = codebook_size
        self.leaf_cap = leaf_cap
        self.encoder = encoder
        self._tables: dict[tuple[str, str], _Table] = {}

    def _check(self, path: Path) -> None:
        if len(path) != self.levels or not all(0 <= c < self.codebook_size for c in path):
            raise ValueError(f"invalid path {path} for {self.levels} x {self.codebook_size}")

    def _table(self, tenant: str, facet: str) -> _Table:
        return self._tables.setdefault((tenant, facet), _Table())

    def insert(self, tenant: str, facet: str, paths: Mapping[str, Path]) -> dict[str, Address]:
        """Upsert known paths; an item already present moves only if its path changed."""
        for path in paths.values():
            self._check(path)
        table = self._table(tenant, facet)
        placed: dict[str, Address] = {}
        for item, path in paths.items():
            old = table.address.get(item)
            if old is not None and old.path == path:
                placed[item] = old
                continue
            table.remove(item)
            placed[item] = table.insert(item, path, self.leaf_cap)
        return placed

    def build(
        self,
        tenant: str,
        facet: str,
        items: Sequence[str],
        codes: Tensor,
        errors: Tensor | None = None,
    ) -> None:
        """Replace the table from a full assignment; low-error items fill primaries first."""
        self._tables.pop((tenant, facet), None)
        order = range(len(items)) if errors is None else errors.argsort(stable=True).tolist()
        paths = as_paths(codes)
        self.insert(tenant, facet, {items[i]: paths[i] for i in order})

    def assign(
        self, tenant: str, facet: str, items: Sequence[str], vectors: Tensor
    ) -> dict[str, Address]:
        """Real-time: encode with the current codebook (O(L·K) per item) and insert."""
        if self.encoder is None:
            raise RuntimeError("assign needs an encoder; use insert with known paths")
        codes = self.encoder.encode(facet, vectors)
        return self.insert(tenant, facet, dict(zip(items, as_paths(codes), strict=True)))

    def restore(self, tenant: str, facet: str, entries: Iterable[tuple[str, Address]]) -> None:
        """Replace the table with items at known addresses, in the order ``entries`` gives."""
        table = _Table()
        for item, addr in entries:
            self._check(addr.path)
            if addr.slot < 0:
                raise ValueError(f"invalid slot {addr.slot}")
            table.remove(item)
            table.insert(item, addr.path, self.leaf_cap, addr.slot)
            if len(table.leaves[addr.path][addr.slot]) > self.leaf_cap:
                raise ValueError(f"sub-leaf {addr} would hold over {self.leaf_cap} items")
        self._tables[(tenant, facet)] = table

    def entries(self, tenant: str, facet: str) -> list[tuple[str, Address]]:
        """Every item and its address in insertion order, which is every bucket's read order:
        ``restore`` of this list rebuilds a table that answers queries identically."""
        table = self._tables.get((tenant, facet))
        return [] if table is None else list(table.address.items())

    def remove(self, tenant: str, items: Iterable[str], facet: str | None = None) -> None:
        """Drop items from one facet of a tenant, or from all its facets."""
        targets = list(items)
        for (t, f), table in self._tables.items():
            if t == tenant and facet in (None, f):
                for item in targets:
                    table.remove(item)

    def paths(self, tenant: str, facet: str) -> dict[str, Path]:
        table = self._tables.get((tenant, facet))
        return {} if table is None else {i: a.path for i, a in table.address.items()}

    def address(self, tenant: str, facet: str, item: str) -> Address | None:
        table = self._tables.get((tenant, facet))
        return None if table is None else table.address.get(item)

    def items_at(self, tenant: str, facet: str, prefix: Path) -> list[str]:
        """Items whose path starts with ``prefix`` (a full path gives the whole leaf)."""
        table = self._tables.get((tenant, facet))
        if table is None:
            return []
        if len(prefix) == self.levels:
            return [i for sub in table.leaves.get(prefix, []) for i in sub]
        return list(table.prefixes.get(prefix, {}))

    def candidates(
        self, tenant: str, query_paths: Mapping[str, Sequence[Path]], k: int
    ) -> list[str]:
        """Up to ``k`` items from the union of the query paths' leaves, then shorter prefixes.

        ``query_paths`` maps facet → paths, best first. Order: every primary sub-leaf
        (paths round-robin across facets), then overflow sub-leaves, then prefixes of
        length L-1 down to 1 until ``k`` items. Only this tenant's tables are read.
        """
        if k <= 0:
            return []
        found: dict[str, None] = {}
        tables = {f: self._tables.get((tenant, f)) for f in query_paths}
        ranked = [
            (f, tuple(v[rank]))
            for rank in range(max((len(v) for v in query_paths.values()), default=0))
            for f, v in query_paths.items()
            if rank < len(v)
        ]

        def take(bucket: Iterable[str]) -> bool:
            for item in bucket:
                found.setdefault(item, None)
                if len(found) >= k:
                    return True
            return False

        for overflow in (False, True):
            for facet, path in ranked:
                table = tables[facet]
                if table is None or path not in table.leaves:
                    continue
                subs = table.leaves[path]
                for sub in subs[1:] if overflow else subs[:1]:
                    if take(sub):
                        return list(found)
        for depth in range(self.levels - 1, 0, -1):
            seen: set[tuple[str, Path]] = set()
            for facet, path in ranked:
                table, key = tables[facet], (facet, path[:depth])
                if table is None or key in seen:
                    continue
                seen.add(key)
                if take(table.prefixes.get(path[:depth], {})):
                    return list(found)
        return list(found)

    def gather(self, tenant: str, buckets: Iterable[tuple[str, Path]], k: int) -> list[str]:
        """Up to ``k`` items from ``(facet, prefix)`` buckets read in the order the caller ranks
        them: a full path reads its leaf (primary first), a shorter prefix all items under it."""
        found: dict[str, None] = {}
        seen: set[tuple[str, Path]] = set()
        for facet, prefix in buckets:
            table = self._tables.get((tenant, facet))
            if table is None or (facet, prefix) in seen:
                continue
            seen.add((facet, prefix))
            if len(prefix) == self.levels:
                bucket: Iterable[str] = (i for sub in table.leaves.get(prefix, ()) for i in sub)
            else:
                bucket = table.prefixes.get(prefix, {})
            for item in bucket:
                if len(found) >= k:
                    return list(found)
                found[item] = None
        return list(found)[: max(k, 0)]

    def leaf_stats(self, tenant: str, facet: str) -> LeafStats:
        """Leaf-size distribution (all sub-leaves of a path together)."""
        table = self._tables.get((tenant, facet))
        if table is None or not table.leaves:
            return LeafStats(0, 0, 0.0, 0, 0, 0, 0, 0)
        sizes = sorted(sum(len(s) for s in subs) for subs in table.leaves.values())
        overflow = sum(len(s) for subs in table.leaves.values() for s in subs[1:])

        def pct(q: float) -> int:
            return sizes[min(len(sizes) - 1, int(q * len(sizes)))]

        total = sum(sizes)
        return LeafStats(
            len(sizes),
            total,
            total / len(sizes),
            pct(0.5),
            pct(0.9),
            pct(0.99),
            sizes[-1],
            overflow,
        )
