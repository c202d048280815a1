"""Memory-change notices from Kafka, handed to a callback (the reader's cache invalidation).

Every reader must hear every notice, so the feed joins no consumer group: it
assigns itself all partitions of the changes topic and starts at their end
(what was cached before it started was read after those notices). It never
creates the topic: a reader that starts before any worker waits for it, and
then reads the new topic from its beginning, since all of it is news. The
partitions are those the topic had when the feed started.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from kafka import KafkaConsumer, TopicPartition

from memory_store.change_notice import ChangeNotice, decode_notices
from streams.kafka.options import reader_options
from streams.settings import Settings

__all__ = ["ChangeFeed", "FeedStats"]

log = logging.getLogger(__name__)

_POLL_MS = 200
_RETRY_S = 0.5


@dataclass(frozen=True, slots=True)
class FeedStats:
    """Counters since the feed started."""

    notices: int
    undecodable: int
    handler_errors: int
    reconnects: int


class ChangeFeed:
    """A daemon thread that calls ``on_notice`` for each change notice, in order per user."""

    def __init__(
        self,
        settings: Settings,
        on_notice: Callable[[ChangeNotice], None],
        on_ready: Callable[[], None] | None = None,
    ) -> None:
        """``on_ready`` runs in the feed's thread each time the partitions are positioned,
        before ``ready`` is set: a cache drops there what it loaded earlier, since a
        notice sent before the feed was positioned is never delivered."""
        self._settings = settings
        self._on_notice = on_notice
        self._on_ready = on_ready
        self._stop = threading.Event()
        self.ready = threading.Event()
        """Set once all partitions are assigned and positioned: later notices are heard."""
        self._thread: threading.Thread | None = None
        # Next offset per partition, so a reconnect resumes where the last consumer stopped.
        self._positions: dict[int, int] = {}
        self._notices = self._undecodable = self._handler_errors = self._reconnects = 0

    def start(self) -> None:
        if self._thread is not None:
            raise RuntimeError("the change feed was already started")
        self._thread = threading.Thread(target=self._run, name="change-feed", daemon=True)
        self._thread.start()

    def stop(self, timeout_s: float = 10.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout_s)

    def stats(self) -> FeedStats:
        return FeedStats(self._notices, self._undecodable, self._handler_errors, self._reconnects)

    def _run(self) -> None:
        from_beginning = False
        while not self._stop.is_set():
            consumer: Any = None
            try:
                client = f"{self._settings.app_id}-change-feed"
                consumer = KafkaConsumer(**reader_options(self._settings, client, reset="latest"))
                from_beginning = self._assign(consumer, from_beginning)
                while not self._stop.is_set():
                    for tp, records in consumer.poll(timeout_ms=_POLL_MS).items():
                        for record in records:
                            self._deliver(record.value)
                            self._positions[tp.partition] = record.offset + 1
            except Exception:
                if self._stop.is_set():
                    break
                log.exception("change feed failed; reconnecting")
                self._reconnects += 1
                self._stop.wait(_RETRY_S)
            finally:
                if consumer is not None:
                    try:
                        consumer.close()
                    except Exception:
                        log.warning("closing the change feed consumer failed", exc_info=True)

    def _assign(self, consumer: Any, from_beginning: bool) -> bool:
        """Assign and position all partitions; True if the topic had to be waited for.

        A partition read before is resumed where it stopped; otherwise a topic
        that did not exist when the feed started is read from its beginning.
        """
        topic = self._settings.topic_changes
        partitions = consumer.partitions_for_topic(topic)
        if not partitions:
            log.info("waiting for topic %s to be created", topic)
        while not partitions and not self._stop.is_set():
            from_beginning = True
            self._stop.wait(_RETRY_S)
            partitions = consumer.partitions_for_topic(topic)
        if self._stop.is_set():
            return from_beginning
        assigned = [TopicPartition(topic, p) for p in sorted(partitions)]
        consumer.assign(assigned)
        for tp in assigned:
            if tp.partition in self._positions:
                consumer.seek(tp, self._positions[tp.partition])
            elif from_beginning:
                consumer.seek_to_beginning(tp)
            else:
                consumer.seek_to_end(tp)
        deadline = time.monotonic() + 30.0
        for tp in assigned:
            while consumer.position(tp, timeout_ms=1000) is None:
                if self._stop.is_set() or time.monotonic() > deadline:
                    raise TimeoutError(f"could not position {tp} of {topic}")
        if self._on_ready is not None:
            self._on_ready()
        self.ready.set()
        log.info("change feed on %s: %d partition(s)", topic, len(assigned))
        return from_beginning

    def _deliver(self, value: bytes | None) -> None:
        notices = decode_notices(value)
        if notices is None:
            self._undecodable += 1
            log.warning("undecodable change notice: %r", (value or b"")[:200])
            return
        for notice in notices:
            self._notices += 1
            try:
                self._on_notice(notice)
            except Exception:
                self._handler_errors += 1
                log.exception("change notice handler failed for %s", notice)
