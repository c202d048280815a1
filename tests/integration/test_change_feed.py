"""The change feed against the real broker: waits for its topic, hears notices in order."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator

import pytest
from kafka import KafkaProducer
from kafka.admin import KafkaAdminClient, NewTopic

from memory_store.change_notice import ChangeNotice, encode_notice
from streams.serve.change_feed import ChangeFeed
from streams.settings import Settings

pytestmark = pytest.mark.integration


def create_topic(settings: Settings, partitions: int = 2) -> None:
    admin = KafkaAdminClient(bootstrap_servers=settings.bootstrap_servers)
    try:
        admin.create_topics([NewTopic(settings.topic_changes, partitions, replication_factor=1)])
    finally:
        admin.close()


def send(settings: Settings, values: list[tuple[bytes | None, bytes]]) -> None:
    """Produce to the changes topic, one flushed batch per value, and wait for delivery."""
    producer = KafkaProducer(bootstrap_servers=settings.bootstrap_servers)
    try:
        for key, value in values:
            producer.send(settings.topic_changes, key=key, value=value).get(timeout=30)
    finally:
        producer.close()


def notices(user: str, versions: range, tenant: str = "acme") -> list[ChangeNotice]:
    return [ChangeNotice(tenant, user, v) for v in versions]


class Heard:
    def __init__(self) -> None:
        self.items: list[ChangeNotice] = []
        self.lock = threading.Lock()

    def __call__(self, notice: ChangeNotice) -> None:
        with self.lock:
            self.items.append(notice)

    def wait_for(self, done: Callable[[list[ChangeNotice]], bool], timeout_s: float = 20) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            with self.lock:
                if done(list(self.items)):
                    return
            time.sleep(0.05)
        raise AssertionError(f"not heard in time; heard {self.items}")


@pytest.fixture
def feed_of(settings: Settings) -> Iterator[Callable[[Heard], ChangeFeed]]:
    started: list[ChangeFeed] = []

    def start(heard: Heard) -> ChangeFeed:
        feed = ChangeFeed(settings, heard)
        feed.start()
        started.append(feed)
        return feed

    yield start
    for feed in started:
        feed.stop()


def test_notices_are_heard_in_order_per_user_and_garbage_is_counted(
    settings: Settings, feed_of: Callable[[Heard], ChangeFeed]
) -> None:
    create_topic(settings)
    before = notices("old", range(3))
    send(settings, [encode_notice(n) for n in before])
    heard = Heard()
    feed = feed_of(heard)
    assert feed.ready.wait(20), "the feed never got positioned"

    wanted = {u: notices(u, range(1, 11)) for u in ("u1", "u2", "u3")}
    interleaved = [wanted[u][i] for i in range(10) for u in wanted]
    values: list[tuple[bytes | None, bytes]] = [encode_notice(n) for n in interleaved[:15]]
    values += [(b"acme\x1fu1", b"not json"), (None, b'{"tenant": "acme"}')]
    values += [encode_notice(n) for n in interleaved[15:]]
    send(settings, values)

    heard.wait_for(lambda got: all(n in got for n in interleaved))
    got = heard.items
    for user, expected in wanted.items():
        assert [n for n in got if n.user_id == user] == expected
    # It starts at the end; this broker may hand back the last batch before it, no more.
    assert [n for n in got if n.user_id == "old"] in ([], before[-1:])
    stats = feed.stats()
    assert stats.undecodable == 2 and stats.handler_errors == 0
    assert stats.notices == len(got)


def test_the_feed_waits_for_its_topic_and_then_reads_all_of_it(
    settings: Settings, feed_of: Callable[[Heard], ChangeFeed]
) -> None:
    heard = Heard()
    feed = feed_of(heard)
    assert not feed.ready.wait(1.0)
    create_topic(settings, partitions=1)
    first = notices("u1", range(5))
    send(settings, [encode_notice(n) for n in first])
    assert feed.ready.wait(20)
    heard.wait_for(lambda got: got == first)


def test_a_failing_handler_is_counted_not_fatal(settings: Settings) -> None:
    create_topic(settings, partitions=1)
    heard = Heard()

    def flaky(notice: ChangeNotice) -> None:
        if notice.version == 1:
            raise RuntimeError("boom")
        heard(notice)

    feed = ChangeFeed(settings, flaky)
    feed.start()
    try:
        assert feed.ready.wait(20)
        send(settings, [encode_notice(n) for n in notices("u1", range(3))])
        heard.wait_for(lambda got: [n.version for n in got] == [0, 2])
        assert feed.stats().handler_errors == 1
    finally:
        feed.stop()
