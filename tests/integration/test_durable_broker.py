"""A durable broker and shared object storage: Tansu's log and LanceDB on one S3-compatible
server on loopback (moto_server). A broker restart keeps the topics, and a worker on the
object store rides through it: every event stored once, none lost, no operator action."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kafka import KafkaConsumer, KafkaProducer

from memory_store.lance.db import configure_storage
from memory_store.lance.store import open_store
from streams.settings import Settings
from streams.tools.broker import Broker, free_port, start_broker
from tests.integration.conftest import encode, interaction, produce
from tests.object_store import ObjectStore

pytestmark = pytest.mark.integration

W = "beliefstream_events_written_total"


class DurableBroker:
    """A Tansu on a fixed port whose log lives in a bucket: stop it, start it again."""

    def __init__(self, object_store: ObjectStore) -> None:
        self.port = free_port()
        self.log_uri = f"s3://{object_store.bucket()}/"
        self.storage = object_store.storage
        self.broker: Broker = self.start()

    def start(self) -> Broker:
        self.broker = start_broker(self.port, log_uri=self.log_uri, storage=self.storage)
        return self.broker

    @property
    def bootstrap_servers(self) -> str:
        return self.broker.bootstrap_servers


@pytest.fixture
def durable(object_store: ObjectStore) -> Iterator[DurableBroker]:
    broker = DurableBroker(object_store)
    try:
        yield broker
    finally:
        broker.broker.stop()


def _consume(bootstrap: str, topic: str, expected: int) -> list[bytes]:
    consumer = KafkaConsumer(topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest",
                             enable_auto_commit=False, consumer_timeout_ms=20_000)  # fmt: skip
    values = []
    try:
        for record in consumer:
            values.append(record.value)
            if len(values) >= expected:
                break
    finally:
        consumer.close()
    return values


def test_a_restarted_durable_broker_still_has_every_record(durable: DurableBroker) -> None:
    producer = KafkaProducer(bootstrap_servers=durable.bootstrap_servers)
    for i in range(100):
        producer.send("durable", value=f"r{i}".encode())
    producer.flush()
    producer.close()
    durable.broker.process.kill()  # no goodbye: what a crash leaves
    durable.broker.process.wait(10)
    durable.start()
    assert sorted(_consume(durable.bootstrap_servers, "durable", 100)) == sorted(
        f"r{i}".encode() for i in range(100)
    )


def test_a_worker_on_the_object_store_rides_through_a_broker_restart(
    durable: DurableBroker, object_store: ObjectStore, settings: Settings, start_worker: Any,
    tmp_path: Path,
) -> None:  # fmt: skip
    settings = settings.model_copy(update={
        "bootstrap_servers": durable.bootstrap_servers,
        "lancedb_uri": f"s3://{object_store.bucket()}/memory",
        "storage": object_store.storage,
        "scheduler_url": f"sqlite:///{tmp_path / 'jobs.sqlite'}",
    })  # fmt: skip
    events = [interaction(i) for i in range(2000)]
    produce(settings, encode(events[:1000]))
    worker = start_worker(settings)
    worker.wait_for(lambda: worker.metric(W) >= 1000, timeout=120)

    durable.broker.process.kill()
    durable.broker.process.wait(10)
    durable.start()  # same port, same log: the worker's clients reconnect by themselves
    produce(settings, encode(events[1000:]))
    worker.wait_for(lambda: worker.metric(W) >= 2000, timeout=180)
    assert worker.proc.poll() is None, worker.log()

    configure_storage(object_store.storage.lance_options())
    try:
        store = open_store(settings.lancedb_uri)
        assert store.count_events() == 2000  # every event once: none lost, none twice
    finally:
        configure_storage({})
    assert worker.stop() == 0
