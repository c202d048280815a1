"""The item codebook in the worker, through the real broker: a tenant's model is fitted once it
has enough catalogue and interactions, then an item produced on ``items`` is indexed at once
and returned by ``candidates`` for a user whose preferences match it, never for another
tenant's user."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
import torch

from memory_store.codebook.item_codebook import ItemCodebook
from memory_store.codebook.store import CodebookStore
from memory_store.embedding import MiniLMEmbedder
from memory_store.lance.catalogue import open_catalogue
from memory_store.lance.store import open_store
from memory_store.reader import MemoryReader
from streams.settings import CodebookSettings, Settings
from tests.integration.conftest import encode, produce

pytestmark = pytest.mark.integration

GENRES = {
    "Sci-Fi": ("Star", "Galaxy", "Robot", "Alien", "Planet", "Orbit", "Nebula", "Cosmos",
               "Android", "Rocket", "Comet", "Starship"),
    "Comedy": ("Laugh", "Party", "Prank", "Giggle", "Roommates", "Wedding", "Clown", "Holiday",
               "Neighbours", "Vacation", "Joke", "Sitcom"),
    "Horror": ("Ghost", "Haunted", "Zombie", "Curse", "Crypt", "Demon", "Nightmare", "Shadow",
               "Vampire", "Scream", "Coffin", "Witch"),
    "Western": ("Cowboy", "Outlaw", "Sheriff", "Saloon", "Frontier", "Ranch", "Stagecoach",
                "Gunslinger", "Canyon", "Rodeo", "Prairie", "Bandit"),
}  # fmt: skip
ABOUT = {
    "Sci-Fi": "A starship crew explores distant planets and meets alien robots.",
    "Comedy": "A silly, funny story full of jokes and awkward misunderstandings.",
    "Horror": "A terrifying haunted house where ghosts hunt the living at night.",
    "Western": "Cowboys and outlaws duel on the dusty frontier of the old west.",
}
TENANTS = ("acme", "globex")
USERS = 16  # user u likes 8 of the 12 films of genre u % 4


def catalogue(tenant: str) -> list[dict[str, Any]]:
    return [
        {"tenant": tenant, "item_id": f"{tenant}-{genre}-{n}", "title": f"{word} {n}",
         "text": ABOUT[genre], "attributes": {"genres": [genre]}, "ts": 1_700_000_000}
        for genre, words in GENRES.items()
        for n, word in enumerate(words)
    ]  # fmt: skip


def likes(tenant: str) -> list[dict[str, Any]]:
    genres = list(GENRES)
    return [
        {"event_id": f"{tenant}-{u}-{n}", "tenant": tenant, "user_id": f"u{u}",
         "item_id": f"{tenant}-{genres[u % 4]}-{(n + u) % 12}", "type": "like",
         "ts": 1_700_000_000 + 60 * n}
        for u in range(USERS)
        for n in range(8)
    ]  # fmt: skip


def as_items(values: list[dict[str, Any]]) -> list[tuple[bytes, bytes]]:
    return [(v["item_id"].encode(), json.dumps(v).encode()) for v in values]


def test_an_item_produced_on_items_becomes_a_candidate_for_the_matching_user_only(
    settings: Settings, start_worker: Any
) -> None:
    torch.set_num_threads(1)
    settings = settings.model_copy(
        update={"codebook": CodebookSettings(min_items=40, min_events=100, check_s=1.0)}
    )
    items = [i for t in TENANTS for i in catalogue(t)]
    events = [e for t in TENANTS for e in likes(t)]
    produce(settings, as_items(items), topic=settings.topic_items)
    produce(settings, encode(events))
    worker = start_worker(settings)
    fits = 'beliefstream_codebook_updates_total{kind="fit"}'
    worker.wait_for(lambda: worker.metric(fits) >= 2, timeout=120)
    metrics = worker.metrics()
    assert metrics["beliefstream_events_written_total"] == len(events)
    assert metrics['beliefstream_codebook_items_indexed_total{outcome="unindexed"}'] == len(items)
    assert metrics['beliefstream_codebook_items_indexed_total{outcome="indexed"}'] == 0
    for tenant in TENANTS:
        util = f'beliefstream_codebook_utilisation{{facet="content",tenant="{tenant}"}}'
        assert 0 < metrics[util] <= 1
        size = f'beliefstream_codebook_items{{facet="content",tenant="{tenant}"}}'
        assert metrics[size] == len(GENRES) * 12

    codebook = ItemCodebook(store=CodebookStore(settings.lancedb_uri))
    reader = MemoryReader(
        open_store(settings.lancedb_uri), open_catalogue(settings.lancedb_uri), MiniLMEmbedder(),
        decay_in_event_time=True, codebook=codebook,
    )  # fmt: skip
    content = ["content"]  # the facet a brand-new item has: no one engaged with it yet
    before = reader.candidates("acme", "u0", k=4, facets=content)  # u0 likes Sci-Fi
    assert sorted(before) == [f"acme-Sci-Fi-{n}" for n in (10, 11, 8, 9)], before  # unseen ones
    new = {
        "tenant": "acme",
        "item_id": "acme-new",
        "title": "Starship Robots of the Galaxy",
        "text": ABOUT["Sci-Fi"],
        "attributes": {"genres": ["Sci-Fi"]},
        "ts": 1_700_001_000,
    }
    produce(settings, as_items([new]), topic=settings.topic_items)  # fmt: skip
    started = time.monotonic()
    while "acme-new" not in reader.candidates("acme", "u0", k=10):
        assert time.monotonic() - started < 30, worker.log()
        time.sleep(0.05)
        codebook.sync()  # what `beliefstream serve` does every _SYNC_EVERY_S
    assert "acme-new" in reader.candidates("acme", "u0", k=5, facets=content)
    indexed = 'beliefstream_codebook_items_indexed_total{outcome="indexed"}'
    worker.wait_for(lambda: worker.metric(indexed) == 1)
    assert worker.metric("beliefstream_codebook_assign_seconds_count") == 1
    codebook.sync()
    for user in range(USERS):  # globex users never get acme's items, matching or not
        found = reader.candidates("globex", f"u{user}", k=20)
        assert found and all(i.startswith("globex-") for i in found), found
    assert worker.stop() == 0
