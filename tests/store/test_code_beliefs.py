"""Code-path beliefs from the writer's real codebook: items carry their collaborative prefix
and its typical titles, the keeper's fold turns them into beliefs, tenants stay apart."""

from __future__ import annotations

from memory_store.candidates import COLLAB
from memory_store.code_paths import CODE_FACET, is_code_key
from memory_store.keeper import MemoryKeeper
from memory_store.lance.catalogue import ItemCatalogue
from memory_store.store import EventRecord, MemoryStore
from tests.store.test_codebook_child import (
    USERS,
    add,
    catalogue,
    catalogue_items,
    child,
    likes,
    one_thread,
    store,
    upkeep_settled,
    uri,
)
from tests.unit.fake_embedding import fake_embed

__all__ = ["catalogue", "one_thread", "store", "uri"]  # the fixtures these tests use


def test_items_carry_their_collab_prefix_named_by_typical_titles(
    uri: str, store: MemoryStore, catalogue: ItemCatalogue
) -> None:
    worker = child(uri, catalogue, belief_depth=2)
    for tenant in ("acme", "globex"):
        add(catalogue, worker, catalogue_items(tenant, 120))
        store.write_events(likes(tenant, USERS, 6))
    assert worker.code_topics("acme", ["acme-0"]) == {}  # no model yet: nothing to say
    assert upkeep_settled(worker).fitted == ["acme", "globex"]
    ids = [f"acme-{i}" for i in range(120)]
    topics = worker.code_topics("acme", ids)
    book = worker._books["acme"]
    collab = book.prefixes("acme", COLLAB, ids, 2)
    assert collab and set(topics) == set(collab)  # exactly the items with a collab code
    for item, ((key, topic),) in topics.items():
        assert is_code_key(key) and key == "collab/" + "/".join(map(str, collab[item]))
        assert topic.startswith("titles like acme film ")
        typical = book.members("acme", COLLAB, collab[item], 2)
        assert topic == "titles like " + ", ".join(f"acme film {i[5:]}" for i in typical)
    assert worker.code_topics("globex", ids) == {}  # another tenant's items are unknown
    assert worker.code_topics("acme", ids) == topics  # names cached per model version


def test_the_keepers_fold_learns_code_beliefs_once_the_codebook_serves_codes(
    uri: str, store: MemoryStore, catalogue: ItemCatalogue
) -> None:
    worker = child(uri, catalogue, belief_depth=1)
    add(catalogue, worker, catalogue_items("acme", 120))
    store.write_events(likes("acme", USERS, 6))
    assert upkeep_settled(worker).fitted == ["acme"]
    keeper = MemoryKeeper(store, catalogue, fake_embed)
    later = [EventRecord(r.event.model_copy(update={"event_id": "late-" + r.event.event_id}))
             for r in likes("acme", 2, 6)]  # fmt: skip
    keeper.ingest(later[:6])  # user u0, before the keeper reads codes: genres only
    keeper.code_topics = worker.code_topics
    keeper.ingest(later[6:])  # user u1
    memory = store.read_snapshots([("acme", "u0"), ("acme", "u1")])
    assert not [c for c in memory[("acme", "u0")].chunks if c.facet == CODE_FACET]
    coded = [c for c in memory[("acme", "u1")].chunks if c.facet == CODE_FACET]
    assert coded and all(c.key.count("/") == 1 for c in coded)  # depth 1: collab/<code>
    assert sum(c.evidence_count for c in coded) == sum(
        1 for r in later[6:] if worker.code_topics("acme", [r.event.item_id])
    )
