"""The HTTP read API: keys scoped to tenants, validation, happy paths and the OpenAPI document."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import pytest

from memory_store.codebook.item_codebook import ItemCodebook
from memory_store.events import Item
from memory_store.lance.catalogue import open_catalogue
from memory_store.lance.store import open_store
from memory_store.reader import MemoryReader
from memory_store.store import EventRecord, UserDelta
from memory_store.tiers import Delta, Profile
from streams.serve.api import create_app
from tests.store.test_reader import NOW, chunk, interaction
from tests.unit.fake_embedding import fake_embed

with warnings.catch_warnings():  # starlette would rather test with httpx2, not in the lock
    warnings.filterwarnings("ignore", "Using `httpx` with `starlette.testclient`")
    from fastapi.testclient import TestClient

KEYS = {"k-acme": "acme", "k-globex": "globex"}
ACME = {"X-API-Key": "k-acme"}
MEMORY = "/v1/tenants/{}/users/{}/memory"
RETRIEVE = "/v1/tenants/{}/users/{}/retrieve"


@pytest.fixture
def client(tmp_path: Path) -> TestClient:
    return TestClient(create_app(memory_reader(tmp_path), KEYS))


def memory_reader(tmp_path: Path, codebook: ItemCodebook | None = None) -> MemoryReader:
    """acme/u1: two beliefs, a profile and three events; globex/u1: one belief; one item."""
    store = open_store(str(tmp_path))
    profile = Profile("acme", "u1", "Enjoys Comedy.", (1.0,), 2, (("c", 1),), NOW)
    upserts = (chunk("acme", "u1", "comedy", 0.6), chunk("acme", "u1", "drama", 0.4))
    store.write_deltas(
        [
            UserDelta("acme", "u1", Delta(upserts=upserts, profile=profile)),
            UserDelta("globex", "u1", Delta(upserts=(chunk("globex", "u1", "horror", 0.9),))),
        ]
    )
    store.write_events([EventRecord(interaction(n, "acme", "u1", NOW - 10 + n)) for n in range(3)])
    catalogue = open_catalogue(str(tmp_path))
    catalogue.write_items(
        [Item(tenant="acme", item_id="film", title="Film", attributes={"genres": "Drama"}, ts=0)]
    )
    return MemoryReader(store, catalogue, fake_embed, clock=lambda: NOW, codebook=codebook)


def test_health_needs_no_key(client: TestClient) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}


@pytest.mark.parametrize("headers", [{}, {"X-API-Key": ""}, {"X-API-Key": "k-nope"}])
def test_a_missing_or_unknown_key_is_401(client: TestClient, headers: dict[str, str]) -> None:
    for response in (
        client.get(MEMORY.format("acme", "u1"), headers=headers),
        client.post(RETRIEVE.format("acme", "u1"), headers=headers, json={"query": "Comedy"}),
    ):
        assert response.status_code == 401
        assert response.json() == {"detail": "missing or unknown X-API-Key"}


def test_a_key_of_another_tenant_is_403_and_reads_nothing(client: TestClient) -> None:
    globex = {"X-API-Key": "k-globex"}
    for response in (
        client.get(MEMORY.format("acme", "u1"), headers=globex),
        client.post(RETRIEVE.format("acme", "u1"), headers=globex, json={"query": "Comedy"}),
    ):
        assert response.status_code == 403
        assert "may not read tenant 'acme'" in response.json()["detail"]
        assert "Comedy" not in response.text
    own = client.get(MEMORY.format("globex", "u1"), headers=globex).json()
    assert [c["text"] for c in own["chunks"]] == ["likes Horror"]


def test_memory_returns_profile_chunks_and_events(client: TestClient) -> None:
    response = client.get(MEMORY.format("acme", "u1"), params={"k": 1}, headers=ACME)
    assert response.status_code == 200
    body = response.json()
    assert (body["tenant"], body["user_id"], body["version"], body["chunk_count"]) == (
        "acme",
        "u1",
        -1,
        2,
    )
    assert body["profile"] == {
        "narrative": "Enjoys Comedy.",
        "version": 2,
        "built_at": NOW,
        "sources": 1,
    }
    assert [(c["text"], c["polarity"]) for c in body["chunks"]] == [("likes Comedy", "like")]
    assert body["chunks"][0]["strength"] == pytest.approx(0.6)
    assert [e["event_id"] for e in body["events"]] == ["e2", "e1", "e0"]
    assert body["events"][0] == {
        "event_id": "e2",
        "item_id": "i2",
        "type": "like",
        "value": None,
        "ts": NOW - 8,
    }


@pytest.mark.parametrize(
    "body",
    [
        {"query": "Drama"},
        {"embedding": fake_embed(["Drama"])[0]},
        {"item_ids": ["film"], "k": 5},
    ],
)
def test_retrieve_by_text_embedding_or_items(client: TestClient, body: dict[str, Any]) -> None:
    response = client.post(RETRIEVE.format("acme", "u1"), headers=ACME, json=body)
    assert response.status_code == 200, response.text
    chunks = response.json()["chunks"]
    assert {c["text"] for c in chunks} == {"likes Comedy", "likes Drama"}
    scores = [c["score"] for c in chunks]
    assert scores == sorted(scores, reverse=True)
    if "item_ids" not in body:  # fake embeddings: only the same text is similar
        assert chunks[0]["text"] == "likes Drama"
        assert chunks[0]["similarity"] == pytest.approx(1.0, abs=1e-5)


@pytest.mark.parametrize("k", ["-1", "1001", "ten"])
def test_a_bad_k_is_422(client: TestClient, k: str) -> None:
    response = client.get(MEMORY.format("acme", "u1"), params={"k": k}, headers=ACME)
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["query", "k"]
    bad = client.post(RETRIEVE.format("acme", "u1"), headers=ACME, json={"query": "Drama", "k": k})
    assert bad.status_code == 422


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"query": "Drama", "item_ids": ["film"]}, "exactly one of"),
        ({"query": "Drama", "embedding": [1.0]}, "exactly one of"),
        ({"k": 3}, "exactly one of"),
        ({"query": ""}, "at least 1 character"),
        ({"item_ids": []}, "at least 1 item"),
        ({"query": "Drama", "colour": "red"}, "Extra inputs are not permitted"),
        ({"embedding": ["x"]}, "valid number"),
    ],
)
def test_a_bad_body_is_422_with_a_clear_message(
    client: TestClient, body: dict[str, Any], message: str
) -> None:
    response = client.post(RETRIEVE.format("acme", "u1"), headers=ACME, json=body)
    assert response.status_code == 422
    assert message in response.text


def test_a_malformed_json_body_is_422(client: TestClient) -> None:
    response = client.post(
        RETRIEVE.format("acme", "u1"),
        headers={**ACME, "Content-Type": "application/json"},
        content=b"{not json",
    )
    assert response.status_code == 422


def test_a_wrong_embedding_dimension_is_422(client: TestClient) -> None:
    response = client.post(
        RETRIEVE.format("acme", "u1"), headers=ACME, json={"embedding": [0.5, 0.5]}
    )
    assert response.status_code == 422
    assert response.json() == {  # the schema's shape, as for every 422
        "detail": [{"loc": ["body"], "type": "value_error",
                    "msg": "query embedding has 2 dimensions; the embedding dimension is 8"}]
    }  # fmt: skip


def test_a_422_never_echoes_the_request_and_an_oversized_body_is_413(client: TestClient) -> None:
    huge = {"query": "Drama", "colour": "x" * 500_000}
    response = client.post(RETRIEVE.format("acme", "u1"), headers=ACME, json=huge)
    assert response.status_code == 422 and len(response.content) < 2_000
    assert "input" not in response.json()["detail"][0]
    too_big = {"query": "Drama", "colour": "x" * 2_000_000}
    response = client.post(RETRIEVE.format("acme", "u1"), headers=ACME, json=too_big)
    assert response.status_code == 413 and response.json()["detail"].startswith("request body")
    chunked = client.post(RETRIEVE.format("acme", "u1"), headers=ACME,
                          content=iter([b"{" + b" " * 700_000] * 2 + [b"}"]))  # fmt: skip
    assert chunked.status_code == 413


@pytest.mark.parametrize(
    "body", [{"query": None}, {"query": "Drama", "embedding": None}, {"as_of": None, "query": "x"}]
)
def test_an_explicit_null_is_refused_as_the_schema_refuses_it(
    client: TestClient, body: dict[str, Any]
) -> None:
    response = client.post(RETRIEVE.format("acme", "u1"), headers=ACME, json=body)
    assert response.status_code == 422


def test_unknown_items_are_404_and_name_the_items(client: TestClient) -> None:
    response = client.post(
        RETRIEVE.format("acme", "u1"), headers=ACME, json={"item_ids": ["film", "ghost"]}
    )
    assert response.status_code == 404
    assert response.json() == {"detail": "unknown item id(s) for tenant 'acme': 'ghost'"}


def test_openapi_documents_both_paths_and_their_models(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    memory = spec["paths"]["/v1/tenants/{tenant}/users/{user_id}/memory"]["get"]
    retrieve = spec["paths"]["/v1/tenants/{tenant}/users/{user_id}/retrieve"]["post"]
    assert memory["responses"]["200"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/MemoryOut"
    }
    assert {"401", "403", "422"} <= set(memory["responses"])
    assert {"401", "403", "404", "422"} <= set(retrieve["responses"])
    assert retrieve["requestBody"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/RetrieveIn"
    }
    assert {"MemoryOut", "RetrieveIn", "RetrieveOut", "ScoredChunkOut"} <= set(
        spec["components"]["schemas"]
    )
    assert spec["components"]["securitySchemes"]["APIKeyHeader"]["name"] == "X-API-Key"


MEMORIES = "/v1/tenants/{}/memories"


def test_memories_reads_a_batch_in_request_order_within_the_keys_tenant(
    client: TestClient,
) -> None:
    body = {"user_ids": ["u2", "u1", "u2"], "k": 1}
    response = client.post(MEMORIES.format("acme"), headers=ACME, json=body)
    assert response.status_code == 200
    out = response.json()
    assert out["tenant"] == "acme" and [m["user_id"] for m in out["memories"]] == ["u2", "u1"]
    unknown, u1 = out["memories"]
    assert unknown["chunks"] == [] and unknown["profile"] is None and unknown["events"] == []
    single = client.get(MEMORY.format("acme", "u1"), params={"k": 1}, headers=ACME).json()
    assert u1 == single and [c["text"] for c in u1["chunks"]] == ["likes Comedy"]
    # globex's u1 (likes Horror) is never in acme's answer, and globex's key may not ask.
    assert "Horror" not in response.text
    globex = client.post(MEMORIES.format("acme"), headers={"X-API-Key": "k-globex"}, json=body)
    assert globex.status_code == 403 and "Comedy" not in globex.text


@pytest.mark.parametrize(
    "body", [{"user_ids": []}, {"user_ids": [""]}, {"user_ids": ["u1"], "k": -1}, {"k": 3},
             {"user_ids": ["u1"] * 1001}, {"user_ids": ["u1"], "extra": 1},
             {"user_ids": ["u1", "u2"], "as_of": [1.0]}, {"user_ids": ["u1"], "as_of": "soon"},
             {"reads": [{"user_id": "u1", "as_of": 1.0}], "as_of": 2.0},
             {"reads": [{"user_id": "u1", "as_of": 1.0}], "user_ids": ["u1"]}, {"reads": []}]
)  # fmt: skip
def test_a_bad_batch_is_422(client: TestClient, body: dict[str, Any]) -> None:
    assert client.post(MEMORIES.format("acme"), headers=ACME, json=body).status_code == 422


def test_as_of_reads_the_memory_as_it_stood_then(client: TestClient) -> None:
    """The fixture's beliefs and profile hold from NOW; its events are at NOW-10, -9, -8."""
    before = client.get(MEMORY.format("acme", "u1"), params={"as_of": NOW - 9}, headers=ACME)
    assert before.status_code == 200
    early = before.json()
    assert early["chunks"] == [] and early["profile"] is None and early["chunk_count"] == 0
    assert [e["ts"] for e in early["events"]] == [NOW - 9, NOW - 10]
    then = client.get(MEMORY.format("acme", "u1"), params={"as_of": NOW}, headers=ACME).json()
    now = client.get(MEMORY.format("acme", "u1"), headers=ACME).json()
    assert then == now  # nothing was written after NOW; decayed to NOW, the reader's clock
    body = {"reads": [{"user_id": "u1", "as_of": NOW - 9}, {"user_id": "u1", "as_of": NOW}],
            "k": 10}  # fmt: skip
    batch = client.post(MEMORIES.format("acme"), headers=ACME, json=body).json()["memories"]
    assert batch == [early, then]
    matched = client.post(
        RETRIEVE.format("acme", "u1"), headers=ACME, json={"query": "Comedy", "as_of": NOW - 9}
    )
    assert matched.status_code == 200 and matched.json()["chunks"] == []


@pytest.mark.parametrize("as_of", ["nan", "inf", "yesterday"])
def test_a_bad_as_of_is_422(client: TestClient, as_of: str) -> None:
    response = client.get(MEMORY.format("acme", "u1"), params={"as_of": as_of}, headers=ACME)
    assert response.status_code == 422


@pytest.mark.parametrize("user", ["u1%1Fx", "u%00", "x%0Ay"])
def test_an_id_with_a_control_character_is_422_never_a_forged_key(
    client: TestClient, user: str
) -> None:
    """Stored keys join tenant and id with \\x1f: an id holding it could name another
    tenant's row, so it is refused before any read."""
    assert client.get(MEMORY.format("acme", user), headers=ACME).status_code == 422
    body = {"user_ids": ["u1", "u1\x1fx"]}
    assert client.post(MEMORIES.format("acme"), headers=ACME, json=body).status_code == 422


def test_metrics_time_each_route_by_its_template_without_a_key(client: TestClient) -> None:
    assert client.get(MEMORY.format("acme", "u1"), headers=ACME).status_code == 200
    assert client.get(MEMORY.format("acme", "u1"), headers={}).status_code == 401
    text = client.get("/metrics").text  # no key: no user data in it
    route = "/v1/tenants/{tenant}/users/{user_id}/memory"
    for status in ("200", "401"):
        line = f'beliefstream_read_request_seconds_count{{route="{route}",status="{status}"}} 1.0'
        assert line in text, status
    assert "u1" not in text  # a series per template, never per user
    assert "/metrics" not in client.get("/openapi.json").json()["paths"]
