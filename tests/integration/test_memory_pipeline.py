"""Items and interactions through the real broker into all three tiers, with change notices."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from memory_store.change_notice import decode_notices
from memory_store.lance.store import open_store
from memory_store.store import UserMemory
from streams.settings import Settings
from streams.worker.scheduler import partition_for
from tests.integration.conftest import encode, produce, read_topic

pytestmark = pytest.mark.integration

GENRES = ["Comedy", "Drama", "Horror", "Sci-Fi", "Western"]


def item(i: int, tenant: str = "acme") -> dict[str, Any]:
    genres = [GENRES[i % 5]]
    return {
        "tenant": tenant,
        "item_id": f"item-{i}",
        "title": f"Film {i}",
        "attributes": {"genres": genres, "year": 1990 + i % 10},
        "ts": 1_600_000_000,
    }


def rating(n: int, user: int, item_no: int, value: float, tenant: str = "acme") -> dict[str, Any]:
    return {
        "event_id": f"ev-{n}",
        "tenant": tenant,
        "user_id": f"user-{user}",
        "item_id": f"item-{item_no}",
        "type": "rate",
        "value": value,
        "ts": 880_000_000 + n * 60,
    }


def memory(settings: Settings, user: str, tenant: str = "acme") -> UserMemory:
    return open_store(settings.lancedb_uri).read_user(tenant, user, limit=50)


def test_items_and_ratings_become_beliefs_profiles_and_notices(
    settings: Settings, start_worker: Any
) -> None:
    # Event-time rounds of half a second (events are a minute apart); the last closes 1 s quiet.
    settings = settings.model_copy(update={"round_event_s": 0.5, "round_idle_s": 1.0})
    items = [item(i) for i in range(40)] + [item(i, tenant="globex") for i in range(40)]
    bad_item = {"tenant": "acme", "item_id": "x", "ts": 1}  # no title
    produce(
        settings,
        [(i["item_id"].encode(), json.dumps(i).encode()) for i in items]
        + [(b"x", json.dumps(bad_item).encode())],
        topic=settings.topic_items,
    )
    # user-0 loves comedies (items 0, 5, 10, ...) and hates horror (2, 7, 12, ...).
    events = [rating(n, 0, 5 * n % 40, 5.0) for n in range(8)]
    events += [rating(100 + n, 0, (5 * n + 2) % 40, 1.0) for n in range(6)]
    events += [rating(200 + n, 1, n, 4.0) for n in range(10)]
    events += [dict(rating(n, 0, 5 * n % 40, 1.0), tenant="globex") for n in range(8)]
    worker = start_worker(settings)
    worker.wait_for(lambda: worker.metric("beliefstream_items_stored_total") >= len(items))
    produce(settings, encode(events))

    def maintained() -> bool:
        mem = memory(settings, "user-0")
        return mem.profile is not None and len(mem.chunks) > 0 and mem.event_count == 14

    worker.wait_for(maintained, timeout=60)
    partitions = {partition_for(e["user_id"].encode(), settings.partitions) for e in events}
    closed = 'beliefstream_planner_rounds_total{trigger="idle"}'
    worker.wait_for(lambda: worker.metric(closed) >= len(partitions), timeout=60)
    mem = memory(settings, "user-0")
    beliefs = {(c.facet, c.key): c for c in mem.chunks}
    comedy, horror = beliefs[("genre", "comedy")], beliefs[("genre", "horror")]
    assert comedy.polarity == "like" and comedy.evidence_count == 8
    assert horror.polarity == "dislike" and horror.evidence_count == 6
    # Read against the user's own scale (5 stars is their usual), the 1-star horrors say more
    # than the 5-star comedies; they chose comedies more often (8 against 6).
    assert horror.strength > comedy.strength > 0
    chose = {c.key: c.strength for c in mem.chunks if c.facet == "engagement"}
    assert chose["genre:comedy"] > chose["genre:horror"] > 0
    assert mem.profile is not None and "Comedy" in mem.profile.narrative
    ops = {row["op"] for row in mem.recent_changes}
    assert {"extraction", "reinforcement", "resynthesis"} <= ops
    assert all(row["event_ids"] for row in mem.recent_changes if row["op"] != "resynthesis")

    # globex's user-0 rated the same item ids down: a separate memory, from globex's items.
    other = memory(settings, "user-0", tenant="globex")
    assert {(c.facet, c.key, c.polarity) for c in other.chunks} >= {("genre", "comedy", "dislike")}

    records = read_topic(settings, settings.topic_changes, 2)
    notices = [n for r in records for n in decode_notices(r.value) or []]
    assert {(n.tenant, n.user_id) for n in notices} >= {("acme", "user-0"), ("acme", "user-1")}
    dead = read_topic(settings, settings.topic_items_dlq, 1)
    assert dict(dead[0].headers)["dlq.reason"] == b"missing_field"

    # The same events again: counted once, so memory is unchanged.
    consumed = worker.metric("beliefstream_events_consumed_total")
    produce(settings, encode(events))
    worker.wait_for(lambda: worker.metric("beliefstream_events_consumed_total") >= consumed * 2)
    worker.wait_for(lambda: worker.metric(closed) >= 2 * len(partitions), timeout=60)
    again = memory(settings, "user-0")
    assert again.chunks == mem.chunks and again.profile == mem.profile
    assert worker.stop() == 0


def test_the_llm_narrator_and_extractor_run_in_the_worker(
    settings: Settings, start_worker: Any, llm_cache_dir: Path
) -> None:
    """Profiles narrated by the model (or the template), untagged items given a genre."""
    settings = settings.model_copy(
        update={
            "round_event_s": 0.5,
            "narrator": "llm",
            "extractor": "llm",
            "extractor_genres": ("Comedy", "Horror", "Western"),
            "llm_cache_dir": str(llm_cache_dir),
        }
    )
    items = [item(i) for i in range(40)]
    # Items 40-43 come with a title and a text only: extraction alone learns nothing from them.
    bare = [
        {"tenant": "acme", "item_id": f"item-{i}", "title": f"Laugh Riot {i}",
         "text": "A slapstick comedy about two clumsy cooks.", "ts": 1_600_000_000}
        for i in range(40, 44)
    ]  # fmt: skip
    produce(
        settings,
        [(i["item_id"].encode(), json.dumps(i).encode()) for i in items + bare],
        topic=settings.topic_items,
    )
    events = [rating(n, 0, 5 * n % 40, 5.0) for n in range(8)]
    events += [rating(100 + n, 0, (5 * n + 1) % 40, 4.0) for n in range(8)]
    events += [rating(200 + n, 1, 40 + n, 5.0) for n in range(4)]
    worker = start_worker(settings)
    worker.wait_for(
        lambda: worker.metric("beliefstream_items_stored_total") >= len(items) + len(bare),
        timeout=180,
    )
    tagged = 'beliefstream_items_tagged_total{outcome="tagged"}'
    assert worker.metric(tagged) == len(bare)
    produce(settings, encode(events))
    outcome = "beliefstream_llm_narratives_total"

    def narrated() -> float:
        return sum(v for k, v in worker.metrics().items() if k.startswith(outcome))

    worker.wait_for(lambda: narrated() >= 2, timeout=180)
    mem = memory(settings, "user-0")
    assert mem.profile is not None and mem.profile.narrative
    by_outcome = {k: v for k, v in worker.metrics().items() if k.startswith(outcome)}
    assert set(by_outcome) <= {f'{outcome}{{outcome="{o}"}}' for o in
                               ("llm", "ungrounded", "timeout", "error", "budget")}  # fmt: skip
    resynthesis = [r for r in mem.recent_changes if r["op"] == "resynthesis"]
    assert resynthesis and mem.profile.narrative[:60] in resynthesis[0]["detail"]
    # user-1 rated only the bare items: its genre beliefs come from the model's tags.
    learned = memory(settings, "user-1")
    genres = {c.key for c in learned.chunks if c.facet == "genre"}
    assert genres and genres <= {"comedy", "horror", "western"}
    assert worker.stop() == 0
