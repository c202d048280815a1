"""Create the topics beliefstream reads and writes, before anyone subscribes.

A consumer that subscribes to a topic that does not exist yet only notices it
at its next metadata refresh (minutes), so the worker, the replayer and the
benchmarks all declare the topics first. Explicit retention configs also keep
clients that read them (Quix Streams) happy on brokers that answer none.
"""

from __future__ import annotations

import contextlib
import time

from kafka.admin import KafkaAdminClient, NewTopic
from kafka.errors import KafkaError, TopicAlreadyExistsError

from streams.kafka.options import admin_options
from streams.settings import Settings

__all__ = ["ensure_topics"]

_CONFIGS = {"retention.ms": "604800000", "retention.bytes": "-1", "cleanup.policy": "delete"}


def ensure_topics(
    settings: Settings, extra: dict[str, int] | None = None, timeout_s: float = 20.0
) -> None:
    """Create interactions, items, their dead letters and the change notices (plus ``extra``)."""
    wanted = {
        settings.topic_interactions: settings.partitions,
        settings.topic_dlq: 1,
        settings.topic_items: settings.partitions,
        settings.topic_items_dlq: 1,
        settings.topic_changes: settings.partitions,
        settings.topic_plans: settings.partitions,
        **(extra or {}),
    }
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            admin = KafkaAdminClient(**admin_options(settings))
            break
        except KafkaError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)
    try:
        existing = set(admin.list_topics())
        for name, partitions in wanted.items():
            if name in existing:
                continue
            topic = NewTopic(name, partitions, replication_factor=1, topic_configs=_CONFIGS)
            with contextlib.suppress(TopicAlreadyExistsError):
                admin.create_topics([topic])
    finally:
        admin.close()
