"""Replaying a dataset into the real broker: everything arrives, keyed and in order."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections import defaultdict
from typing import Any

import pytest
from kafka import KafkaConsumer, TopicPartition

from streams.settings import Settings
from streams.tools.datasets import Dataset, load_dataset
from streams.tools.replay import _produce, replay

pytestmark = pytest.mark.integration


def _read_all(settings: Settings, topic: str, expected: int, timeout_s: float = 30.0) -> list[Any]:
    """Every record of ``topic``; counts, not end offsets, say when we are done (broker quirk).

    Partitions are assigned, not subscribed: a group join costs this broker ~20 s.
    """
    consumer = KafkaConsumer(
        bootstrap_servers=settings.bootstrap_servers.split(","),
        group_id=f"test-read-{uuid.uuid4().hex}",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        consumer_timeout_ms=1000,
        **settings.kafka_client_options(),
    )
    records: list[Any] = []
    deadline = time.monotonic() + timeout_s
    try:
        partitions = consumer.partitions_for_topic(topic)
        while not partitions and time.monotonic() < deadline:
            time.sleep(0.1)
            partitions = consumer.partitions_for_topic(topic)
        assert partitions, f"no metadata for topic {topic}"
        consumer.assign([TopicPartition(topic, p) for p in partitions])
        while len(records) < expected and time.monotonic() < deadline:
            for batch in consumer.poll(timeout_ms=500).values():
                records.extend(batch)
        # Anything beyond the expected count would be a duplicate: give it a moment to show.
        for batch in consumer.poll(timeout_ms=500).values():
            records.extend(batch)
    finally:
        consumer.close()
    return records


def test_replay_roundtrip(settings: Settings, capsys: pytest.CaptureFixture[str]) -> None:
    data = load_dataset("ml-100k", limit=2000)
    result = replay(settings, data, progress=False)
    assert (result.interactions, result.items) == (2000, len(data.items))
    assert result.seconds > 0
    assert capsys.readouterr().out == ""

    events = _read_all(settings, settings.topic_interactions, 2000)
    assert len(events) == 2000
    decoded = [json.loads(r.value) for r in events]
    assert sorted(decoded, key=lambda r: r["event_id"]) == sorted(
        data.interactions, key=lambda r: r["event_id"]
    )
    assert all(r.key.decode() == v["user_id"] for r, v in zip(events, decoded, strict=True))

    partitions_of_user: dict[str, set[int]] = defaultdict(set)
    by_partition: dict[int, list[Any]] = defaultdict(list)
    for record in events:
        by_partition[record.partition].append(record)
    for partition, records in by_partition.items():
        last_ts: dict[str, float] = {}
        for record in sorted(records, key=lambda r: r.offset):
            event = json.loads(record.value)
            user = event["user_id"]
            partitions_of_user[user].add(partition)
            assert event["ts"] >= last_ts.get(user, 0), f"user {user} out of order"
            last_ts[user] = event["ts"]
    assert all(len(p) == 1 for p in partitions_of_user.values())
    assert len(by_partition) > 1  # keys do spread over the topic's partitions

    items = _read_all(settings, settings.topic_items, len(data.items))
    assert len(items) == len(data.items)
    assert {r.key.decode(): json.loads(r.value) for r in items} == {
        i["item_id"]: i for i in data.items
    }


def test_rate_limit_paces(settings: Settings) -> None:
    rows = [
        {"event_id": f"e{n}", "tenant": "t", "user_id": f"u{n % 7}", "item_id": "i",
         "type": "view", "ts": n}
        for n in range(600)
    ]  # fmt: skip
    started = time.perf_counter()
    result = replay(settings, Dataset("paced", rows, []), rate=1000, progress=False)
    wall = time.perf_counter() - started
    assert result.interactions == 600
    assert 0.55 <= result.seconds <= wall
    assert result.seconds < 0.6 * 1.05 + 0.3, f"pacing too slow: {result.seconds:.2f}s"
    assert len(_read_all(settings, settings.topic_interactions, 600)) == 600


def test_a_failed_delivery_raises() -> None:
    class Failing:
        async def send(self, topic: str, value: bytes, key: bytes | None) -> asyncio.Future[None]:
            future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            future.set_exception(RuntimeError(f"broker rejected {key!r}"))
            return future

    with pytest.raises(RuntimeError, match="broker rejected"):
        asyncio.run(_produce(Failing(), "t", "user_id", [{"user_id": "u1"}]))
