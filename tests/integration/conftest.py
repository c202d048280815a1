from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kafka import KafkaConsumer, KafkaProducer

from streams.kafka.topics import ensure_topics
from streams.settings import Settings
from tests.integration.worker_process import TestWorker


def interaction(i: int, tenant: str = "acme", users: int = 50) -> dict[str, Any]:
    return {
        "event_id": f"ev-{i}",
        "tenant": tenant,
        "user_id": f"user-{i % users}",
        "item_id": f"item-{i % 997}",
        "type": "rate" if i % 3 == 0 else "view",
        "value": float(i % 5 + 1),
        "ts": 1_700_000_000 + i,
    }


def produce(
    settings: Settings, values: list[tuple[bytes, bytes]], topic: str | None = None
) -> None:
    """Produce (key, value) pairs (to interactions by default) and wait for every delivery."""
    ensure_topics(settings)
    producer = KafkaProducer(bootstrap_servers=settings.bootstrap_servers, linger_ms=5)
    target = topic or settings.topic_interactions
    try:
        futures = [producer.send(target, key=k, value=v) for k, v in values]
        producer.flush()
        for fut in futures:
            fut.get(timeout=30)
    finally:
        producer.close()


def encode(events: list[dict[str, Any]]) -> list[tuple[bytes, bytes]]:
    return [(e["user_id"].encode(), json.dumps(e).encode()) for e in events]


def read_topic(settings: Settings, topic: str, expected: int, timeout_s: float = 30.0) -> list[Any]:
    """Every record of a topic, read until ``expected`` arrived (end offsets are not trusted)."""
    consumer = KafkaConsumer(
        topic,
        bootstrap_servers=settings.bootstrap_servers,
        group_id=f"{settings.app_id}-reader-{topic}",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        consumer_timeout_ms=int(timeout_s * 1000),
        session_timeout_ms=6000,
        heartbeat_interval_ms=2000,
    )
    records = []
    try:
        for record in consumer:
            records.append(record)
            if len(records) >= expected:
                break
    finally:
        consumer.close()
    return records


@pytest.fixture
def start_worker(tmp_path: Path) -> Iterator[Any]:
    started: list[TestWorker] = []

    def start(settings: Settings) -> TestWorker:
        worker = TestWorker(settings, tmp_path / f"worker-{len(started)}.log")
        started.append(worker)
        return worker

    yield start
    for worker in started:
        worker.stop()
