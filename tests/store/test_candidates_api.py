"""Candidates from the item codebook: the reader's queries, real-time items, tenants, over HTTP."""

from __future__ import annotations

import warnings
from collections import Counter
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import torch

from memory_store.candidates import (
    CodebookUnavailableError,
    co_engaged_pairs,
    content_text,
    content_vectors,
)
from memory_store.code_paths import CODE_FACET, code_key
from memory_store.codebook.item_codebook import ItemCodebook, UnknownTenantError
from memory_store.codebook.store import CodebookStore
from memory_store.codebook.tenant_state import CodebookConfig
from memory_store.codebook.train import TrainConfig
from memory_store.events import Interaction, Item
from memory_store.lance.store import open_store
from memory_store.reader import MemoryReader
from memory_store.store import EventRecord, MemoryStore, UserDelta
from memory_store.tiers import Delta, Polarity, chunk_id_for
from streams.serve.api import create_app
from tests.store.test_reader import NOW, chunk
from tests.unit.fake_embedding import fake_embed

with warnings.catch_warnings():  # starlette would rather test with httpx2, not in the lock
    warnings.filterwarnings("ignore", "Using `httpx` with `starlette.testclient`")
    from fastapi.testclient import TestClient

KEYS = {"k-acme": "acme", "k-globex": "globex", "k-initech": "initech"}
CANDIDATES = "/v1/tenants/{}/users/{}/candidates"
CONFIG = CodebookConfig(
    code_dim=4,
    levels=2,
    codebook_size=8,
    leaf_cap=8,
    train=TrainConfig(steps=40, batch_size=64, seed=0),
    pool=400,  # the whole catalogue is re-scored: rankings below are exact
    beam=16,
)


@pytest.fixture(autouse=True)
def one_thread() -> Iterator[None]:
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def items(tenant: str, n: int = 300) -> list[Item]:
    return [
        Item(tenant=tenant, item_id=f"{tenant[0]}{i}", title=f"{tenant} {i}", ts=0)
        for i in range(n)
    ]


def event(n: int, tenant: str, user: str, item: str, kind: str) -> EventRecord:
    return EventRecord(
        Interaction(
            event_id=f"e{n}", tenant=tenant, user_id=user, item_id=item, type=kind, ts=NOW - 10 + n
        )
    )


@pytest.fixture
def store(tmp_path: Path) -> MemoryStore:
    store = open_store(str(tmp_path))
    store.write_deltas(
        [
            UserDelta("acme", "u1", Delta(upserts=(chunk("acme", "u1", "comedy", 0.6),))),
            UserDelta("globex", "u1", Delta(upserts=(chunk("globex", "u1", "comedy", 0.9),))),
            UserDelta(
                "acme",
                "u3",
                Delta(upserts=(chunk("acme", "u3", "comedy", 0.9, polarity=Polarity.DISLIKE),)),
            ),
        ]
    )
    store.write_events(
        [event(0, "acme", "u2", "a5", "like"), event(1, "acme", "u3", "a5", "dislike")]
    )
    return store


@pytest.fixture
def codebook(tmp_path: Path) -> ItemCodebook:
    codebook = ItemCodebook(CONFIG, CodebookStore(str(tmp_path)))
    for tenant in ("acme", "globex"):
        codebook.fit(tenant, {"content": content_vectors(fake_embed, items(tenant))})
    return codebook


@pytest.fixture
def reader(store: MemoryStore, codebook: ItemCodebook) -> MemoryReader:
    return MemoryReader(store, None, fake_embed, clock=lambda: NOW, codebook=codebook)


@pytest.fixture
def client(reader: MemoryReader) -> TestClient:
    return TestClient(create_app(reader, KEYS))


def test_an_item_assigned_now_is_a_candidate_for_the_user_whose_chunk_matches_it(
    reader: MemoryReader, codebook: ItemCodebook, client: TestClient
) -> None:
    film = Item(tenant="acme", item_id="new-film", title="Comedy", ts=NOW)
    vectors = content_vectors(fake_embed, [film])  # "Comedy": the chunk's topic, embedded alike
    assert "new-film" not in reader.candidates("acme", "u1", 10)
    codebook.assign("acme", film.item_id, {"content": vectors.vectors[0]})
    assert reader.candidates("acme", "u1", 10)[0] == "new-film"
    response = client.get(
        CANDIDATES.format("acme", "u1"), params={"k": 3}, headers={"X-API-Key": "k-acme"}
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["tenant"], body["user_id"], body["items"][0], len(body["items"])) == (
        "acme",
        "u1",
        "new-film",
        3,
    )


def test_a_tenant_never_gets_another_tenants_candidates(
    reader: MemoryReader, codebook: ItemCodebook, client: TestClient
) -> None:
    codebook.assign("acme", "new-film", {"content": fake_embed(["Comedy"])[0]})
    globex = reader.candidates("globex", "u1", 300)
    assert len(globex) == 300 and all(i.startswith("g") for i in globex)
    own = client.get(
        CANDIDATES.format("globex", "u1"), params={"k": 1000}, headers={"X-API-Key": "k-globex"}
    )
    assert own.status_code == 200 and set(own.json()["items"]) == set(globex)
    stolen = client.get(CANDIDATES.format("acme", "u1"), headers={"X-API-Key": "k-globex"})
    assert stolen.status_code == 403
    assert "may not read tenant 'acme'" in stolen.json()["detail"] and "new-film" not in stolen.text
    for headers in ({}, {"X-API-Key": "k-nope"}):
        assert client.get(CANDIDATES.format("acme", "u1"), headers=headers).status_code == 401


def test_recent_liked_items_are_queries_and_seen_items_are_left_out(
    reader: MemoryReader, codebook: ItemCodebook
) -> None:
    liked = codebook.item_vectors("acme", "content", ["a5"])["a5"]
    others = content_vectors(fake_embed, items("acme"))
    sims = torch.nn.functional.normalize(others.vectors, dim=-1) @ liked
    sims[5] = -2.0  # a5 itself was seen
    expected = [others.items[i] for i in sims.argsort(descending=True)[:5].tolist()]
    assert reader.candidates("acme", "u2", 5) == expected
    assert reader.candidates("acme", "u3", 5) == []  # a disliked item and chunk query nothing
    assert reader.candidates("acme", "nobody", 5) == []


def test_errors_say_what_is_missing_or_wrong(
    reader: MemoryReader, store: MemoryStore, client: TestClient
) -> None:
    acme = {"X-API-Key": "k-acme"}
    url = CANDIDATES.format("acme", "u1")
    unknown = client.get(url, params={"facets": "content,collab"}, headers=acme)
    # A facet codebooks have, but not this tenant's: 404, said in the schema.
    assert unknown.status_code == 404 and "unknown facet(s) ['collab']" in unknown.json()["detail"]
    # A facet no codebook has: refused by the schema's pattern.
    assert client.get(url, params={"facets": "genre"}, headers=acme).status_code == 422
    assert client.get(url, params=[("facets", "content")], headers=acme).status_code == 200
    assert client.get(url, params={"k": 1001}, headers=acme).status_code == 422
    none = client.get(CANDIDATES.format("initech", "u1"), headers={"X-API-Key": "k-initech"})
    assert (
        none.status_code == 404 and "no item codebook for tenant 'initech'" in none.json()["detail"]
    )
    with pytest.raises(UnknownTenantError):
        reader.candidates("initech", "u1")
    with pytest.raises(ValueError, match="k must be"):
        reader.candidates("acme", "u1", -1)
    bare = MemoryReader(store, None, fake_embed, clock=lambda: NOW)
    with pytest.raises(CodebookUnavailableError, match="none configured"):
        bare.candidates("acme", "u1")
    response = TestClient(create_app(bare, KEYS)).get(url, headers=acme)
    assert response.status_code == 503 and "none configured" in response.json()["detail"]


def test_item_text_and_co_engaged_pairs() -> None:
    item = Item(
        tenant="t",
        item_id="x",
        title="Heat (1995)",
        text="A heist.",
        attributes={"genres": ["Action", "Crime"], "year": 1995, "empty": ""},
        ts=0,
    )
    assert content_text(item) == "Heat (1995). A heist. genres: Action, Crime; year: 1995"
    assert content_text(Item(tenant="t", item_id="y", title="Solo", ts=0)) == "Solo"
    assert co_engaged_pairs([["a", "b", "c"], ["d"]], window=1) == [
        ("a", "b"),
        ("b", "a"),
        ("b", "c"),
        ("c", "b"),
    ]
    assert ("a", "c") in co_engaged_pairs([["a", "b", "c"]], window=2)


def code_chunk(tenant: str, user: str, key: str, strength: float, polarity: Polarity) -> Any:
    base = chunk(tenant, user, key, strength, polarity=polarity)
    return replace(base, chunk_id=chunk_id_for(tenant, user, CODE_FACET, key), facet=CODE_FACET)


def test_the_strongest_liked_code_paths_lead_the_candidates_without_a_vector_search(
    store: MemoryStore, reader: MemoryReader, codebook: ItemCodebook
) -> None:
    paths = codebook.prefixes("acme", "content", [f"a{i}" for i in range(300)], 1)
    (strong, _), (weak, _) = Counter(paths.values()).most_common(2)
    strong_key, weak_key = code_key("content", strong), code_key("content", weak)
    store.write_deltas([UserDelta("acme", "u4", Delta(upserts=(
        code_chunk("acme", "u4", weak_key, 0.3, Polarity.LIKE),
        code_chunk("acme", "u4", strong_key, 0.7, Polarity.LIKE),
    ))), UserDelta("acme", "u5", Delta(upserts=(
        code_chunk("acme", "u5", strong_key, 0.7, Polarity.DISLIKE),
    )))])  # fmt: skip
    store.write_events([event(7, "acme", "u4", codebook.members("acme", "content", strong, 1)[0],
                              "view")])  # fmt: skip
    reader.clear()
    got = reader.candidates("acme", "u4", 10)
    bucket = codebook.members("acme", "content", strong, 300)
    assert got[:5] == bucket[1:6]  # half of k, most typical first, the seen item left out
    assert len(got) == 10 == len(set(got)) and bucket[0] not in got
    disliked = reader.candidates("acme", "u5", 10)  # a disliked path leads nothing
    assert disliked[:5] != bucket[:5]
    assert reader.candidates("acme", "u4", 10, facets=["content"])[:5] == bucket[1:6]
