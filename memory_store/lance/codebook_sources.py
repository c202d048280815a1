"""What the item codebook learns from, read from the memory's own tables: a tenant's whole
catalogue (the content facet) and its users' positive engagement in time order (item2vec
and co-engagement pairs for the collaborative facet).

These are scans, not point reads, so they sit apart from the store and catalogue
interfaces the hot path uses: the single writer runs them when it fits or refreshes a
tenant's codebook (minutes apart), never per event. Every read filters on the tenant
in LanceDB and again on the rows it gets back.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from memory_store.events import EventType, Interaction, Item
from memory_store.lance.catalogue import ITEMS_TABLE, item_from_row
from memory_store.lance.db import OpenTables, connect
from memory_store.lance.store import EVENTS_TABLE
from memory_store.lance.tier_tables import quote
from memory_store.signals import evidence_weight

__all__ = ["POSITIVE_TYPES", "CodebookSources"]


def _positive(kind: EventType) -> bool:
    return evidence_weight(Interaction.model_construct(type=kind, value=None)) > 0


# Event types that are positive evidence whatever their value (``signals`` decides);
# a rating is positive above the scale's middle (rate 4 and 5).
POSITIVE_TYPES = frozenset(kind.value for kind in EventType if _positive(kind))


class CodebookSources:
    """The catalogue and event tables at ``uri``, read whole per tenant."""

    def __init__(self, uri: str) -> None:
        self._table = OpenTables(connect(uri)).get

    def tenants(self) -> set[str]:
        """Every tenant with an item in the catalogue."""
        table = self._table(ITEMS_TABLE)
        if table is None:
            return set()
        column = table.search().select(["tenant"]).limit(None).to_arrow()["tenant"]
        return {str(t) for t in pc.unique(column).to_pylist()}

    def count_items(self, tenant: str) -> int:
        table = self._table(ITEMS_TABLE)
        return 0 if table is None else int(table.count_rows(f"tenant = {quote(tenant)}"))

    def count_events(self, tenant: str) -> int:
        table = self._table(EVENTS_TABLE)
        return 0 if table is None else int(table.count_rows(f"tenant = {quote(tenant)}"))

    def items(self, tenant: str) -> list[Item]:
        """The tenant's catalogue, in item id order."""
        table = self._table(ITEMS_TABLE)
        if table is None:
            return []
        columns = ["tenant", "item_id", "title", "text", "attributes", "ts"]
        rows = table.search().where(f"tenant = {quote(tenant)}").select(columns)
        found = [
            item_from_row(row)
            for row in rows.limit(None).to_arrow().to_pylist()
            if row["tenant"] == tenant
        ]
        return sorted(found, key=lambda item: item.item_id)

    def engagement(
        self, tenant: str, *, since: float | None = None, max_events: int = 1_000_000
    ) -> dict[str, list[str]]:
        """Per user, the items they engaged with positively, oldest first.

        ``since``: only events stored (``ingested_at``) after it, the data a refresh has
        not seen. At most the ``max_events`` newest positive events (by event time).
        """
        table = self._table(EVENTS_TABLE)
        if table is None:
            return {}
        where = f"tenant = {quote(tenant)}"
        if since is not None:
            where += f" AND ingested_at > {float(since)!r}"
        columns = ["tenant", "user_id", "item_id", "type", "value", "ts"]
        data: pa.Table = table.search().where(where).select(columns).limit(None).to_arrow()
        types = data["type"].to_numpy(zero_copy_only=False)
        values = data["value"].to_numpy(zero_copy_only=False).astype(np.float64)  # null: NaN
        rated = (types == EventType.RATE.value) & (np.nan_to_num(values, nan=0.0) > 3.0)
        keep = np.isin(types, list(POSITIVE_TYPES)) | rated
        keep &= data["tenant"].to_numpy(zero_copy_only=False) == tenant
        data = data.filter(pa.array(keep))
        if data.num_rows > max_events:
            data = data.sort_by([("ts", "descending")]).slice(0, max_events)
        data = data.sort_by([("user_id", "ascending"), ("ts", "ascending")])
        sequences: dict[str, list[str]] = {}
        for user, item in zip(
            data["user_id"].to_pylist(), data["item_id"].to_pylist(), strict=True
        ):
            sequences.setdefault(user, []).append(item)
        return sequences
