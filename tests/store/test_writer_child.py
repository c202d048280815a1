"""The writer child without Kafka: raw consumed messages in, stored memory out (one seam).

``WriterChild`` is what the worker's process pool runs; here it is built directly
over a LanceDB directory and handed the bytes a consumer would have read.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from memory_store.lance.store import open_store
from memory_store.tiers import Polarity
from streams.ingest.batch import Consumed
from streams.ingest.contract import RejectReason
from streams.settings import Settings
from streams.worker.writer.child import WriterChild
from tests.unit.fake_embedding import fake_embed

GENRES = ["Comedy", "Horror"]
DAY = 86_400.0
T0 = 880_000_000.0  # a round boundary every day of event time


def child(path: Path) -> WriterChild:
    settings = Settings(
        lancedb_uri=str(path),
        round_event_s=DAY,
        codebook={"enabled": False},
        _env_file=None,  # type: ignore[call-arg]
    )
    return WriterChild.open(settings, embedder=fake_embed)


def item_message(i: int, offset: int) -> Consumed:
    value = {
        "tenant": "acme",
        "item_id": f"item-{i}",
        "title": f"Film {i}",
        "attributes": {"genres": [GENRES[i % 2]]},
        "ts": T0,
    }
    return Consumed("items", 0, offset, f"item-{i}".encode(), json.dumps(value).encode())


def rating(n: int, item: int, value: float, ts: float) -> dict[str, Any]:
    return {
        "event_id": f"ev-{n}",
        "tenant": "acme",
        "user_id": "user-0",
        "item_id": f"item-{item}",
        "type": "rate",
        "value": value,
        "ts": ts,
    }


def messages() -> list[Consumed]:
    """user-0 loves comedies (even items) and hates horror (odd), over three days."""
    values = [json.dumps(rating(n, 2 * n, 5.0, T0 + n * 3600)).encode() for n in range(6)]
    values += [json.dumps(rating(10 + n, 2 * n + 1, 1.0, T0 + DAY + n * 3600)).encode()
               for n in range(4)]  # fmt: skip
    values.insert(3, b"not json")
    values.append(json.dumps(rating(99, 0, 5.0, T0 + 3 * DAY)).encode())  # crosses two rounds
    return [Consumed("interactions", 0, 100 + i, b"user-0", v) for i, v in enumerate(values)]


def test_raw_messages_become_stored_events_beliefs_and_a_dead_letter(tmp_path: Path) -> None:
    writer = child(tmp_path)
    items = writer.write_items([item_message(i, i) for i in range(12)], now=T0)
    assert items.stored == 12 and items.dead == []

    out = writer.write(messages(), now=T0 + 4 * DAY)

    assert (out.consumed, out.valid, out.inserted) == (12, 11, 11)
    assert [(d.reason, d.source.offset) for d in out.dead] == [(RejectReason.NOT_JSON, 103)]
    assert out.positions == {0: 111}
    assert ("acme", "user-0") in {(t, u) for t, u, _ in out.notices}
    assert len(out.rounds) >= 2  # the day boundaries inside the batch ran where they fell
    memory = open_store(str(tmp_path)).read_user("acme", "user-0", limit=50)
    assert memory.event_count == 11
    polarity = {c.key: c.polarity for c in memory.chunks if c.facet == "genre"}
    assert polarity.get("comedy") == Polarity.LIKE
    assert polarity.get("horror") == Polarity.DISLIKE
    assert memory.profile is not None


def test_a_batch_delivered_again_changes_nothing(tmp_path: Path) -> None:
    writer = child(tmp_path)
    writer.write_items([item_message(i, i) for i in range(12)], now=T0)
    writer.write(messages(), now=T0 + 4 * DAY)
    store = open_store(str(tmp_path))
    before = store.read_user("acme", "user-0", limit=50)

    again = writer.write(messages(), now=T0 + 5 * DAY)

    after = store.read_user("acme", "user-0", limit=50)
    assert again.inserted == 0
    assert after.event_count == before.event_count
    assert [(c.key, c.strength, c.evidence_count) for c in after.chunks] == [
        (c.key, c.strength, c.evidence_count) for c in before.chunks
    ]
    assert after.profile == before.profile


def test_a_new_child_over_the_same_directory_reads_what_the_first_wrote(tmp_path: Path) -> None:
    first = child(tmp_path)
    first.write_items([item_message(i, i) for i in range(12)], now=T0)
    first.write(messages()[:5], now=T0 + DAY)

    second = child(tmp_path)  # a restart: the catalogue and the planner state come back
    out = second.write(messages()[5:], now=T0 + 4 * DAY)

    assert out.inserted == 7
    memory = open_store(str(tmp_path)).read_user("acme", "user-0", limit=50)
    assert memory.event_count == 11
    assert {c.key for c in memory.chunks if c.facet == "genre"} >= {"comedy", "horror"}
