"""Every Kafka client's options, spelled once.

The worker consumes with aiokafka (the batch engine) or Faust (the agent engine),
the change feed, the evaluation and topic set-up use kafka-python, the replay
produces with aiokafka. They must agree on group timing (a rebalance waits out a
session timeout), on where a new group starts (the earliest offset: nothing is
skipped) and on security (``Settings.kafka_client_options``); each function here
returns one kind of client's constructor arguments.
"""

from __future__ import annotations

from typing import Any

from streams.settings import Settings, reveal

__all__ = [
    "HEARTBEAT_INTERVAL_MS",
    "MAX_FETCH_BYTES",
    "SESSION_TIMEOUT_MS",
    "admin_options",
    "faust_options",
    "group_consumer_options",
    "producer_options",
    "reader_options",
    "servers",
]

#: A dead worker's partitions move after this long; short, since a worker that
#: stops cleanly leaves its group at once and only a crash waits it out.
SESSION_TIMEOUT_MS = 6000
HEARTBEAT_INTERVAL_MS = 2000
#: Per-partition fetch: a 5,000-event batch of ~1 KiB events in one or two fetches.
MAX_FETCH_BYTES = 8 * 1024 * 1024


def servers(settings: Settings) -> list[str]:
    """The bootstrap servers as a list (the setting is comma-separated)."""
    return settings.bootstrap_servers.split(",")


def group_consumer_options(
    settings: Settings, group: str, batch_size: int, batch_seconds: float
) -> dict[str, Any]:
    """An aiokafka consumer in ``group`` that commits itself, after each stored batch."""
    return {
        "bootstrap_servers": servers(settings),
        "group_id": group,
        "client_id": group,
        "enable_auto_commit": False,
        "auto_offset_reset": "earliest",
        "max_partition_fetch_bytes": MAX_FETCH_BYTES,
        "fetch_max_wait_ms": int(min(batch_seconds, 0.5) * 1000),
        "max_poll_records": batch_size,
        "session_timeout_ms": SESSION_TIMEOUT_MS,
        "heartbeat_interval_ms": HEARTBEAT_INTERVAL_MS,
        **settings.aiokafka_options(),
    }


def reader_options(settings: Settings, client_id: str, reset: str = "earliest") -> dict[str, Any]:
    """A kafka-python consumer outside any group: it assigns partitions and seeks itself.

    ``reset`` is where it goes when a position it sought has left the log.
    """
    return {
        "bootstrap_servers": servers(settings),
        "client_id": client_id,
        "group_id": None,
        "enable_auto_commit": False,
        "auto_offset_reset": reset,
        **settings.kafka_client_options(),
    }


def admin_options(settings: Settings) -> dict[str, Any]:
    """A kafka-python admin client (topic set-up)."""
    return {
        "bootstrap_servers": servers(settings),
        "client_id": f"{settings.app_id}-admin",
        **settings.kafka_client_options(),
    }


def producer_options(settings: Settings, client_id: str) -> dict[str, Any]:
    """An aiokafka producer tuned for bulk sends (the replay): leader acks, 256 KiB batches."""
    return {
        "bootstrap_servers": servers(settings),
        "client_id": client_id,
        "acks": 1,
        "linger_ms": 5,
        "max_batch_size": 256 * 1024,
        **settings.aiokafka_options(),
    }


def faust_options(settings: Settings) -> dict[str, Any]:
    """A Faust app's broker options, tuned for throughput on raw bytes (see bench ingest)."""
    return {
        "broker": [f"kafka://{server}" for server in servers(settings)],
        "broker_credentials": _faust_credentials(settings),
        "consumer_auto_offset_reset": "earliest",
        "consumer_max_fetch_size": MAX_FETCH_BYTES,
        "broker_max_poll_records": 5000,
        "broker_commit_every": 10_000,
        "broker_commit_interval": 1.0,
        "broker_session_timeout": SESSION_TIMEOUT_MS / 1000,
        "broker_heartbeat_interval": HEARTBEAT_INTERVAL_MS / 1000,
        "topic_partitions": settings.partitions,
        "topic_allow_declare": False,
        "producer_max_batch_size": 16384,
    }


def _faust_credentials(settings: Settings) -> Any:
    if settings.security_protocol == "PLAINTEXT":
        return None
    import faust  # here: the benchmark contenders import this module's timing without Faust

    context = settings.aiokafka_options().get("ssl_context")
    if settings.security_protocol.startswith("SASL"):
        return faust.SASLCredentials(
            username=settings.sasl_username,
            password=reveal(settings.sasl_password),
            mechanism=settings.sasl_mechanism,
            ssl_context=context,
        )
    return faust.SSLCredentials(context)
