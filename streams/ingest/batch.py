"""Split one consumed batch into events to store and dead letters.

Pure and Kafka-free: the agent hands in plain ``Consumed`` messages and gets
back what to write and what to dead-letter, so the whole decision is unit
tested without a broker.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import NamedTuple

from memory_store.events import Item
from memory_store.store import EventRecord
from streams.ingest.contract import Limits, Rejection, RejectReason, decode_interaction, decode_item

__all__ = [
    "Consumed",
    "DeadLetter",
    "SplitBatch",
    "dead_letter_headers",
    "split_batch",
    "split_items",
]


class Consumed(NamedTuple):
    """One message as read from Kafka (a tuple: batches cross a process boundary cheaply)."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """A rejected message: its original bytes, where it came from, and why."""

    source: Consumed
    reason: RejectReason
    detail: str


@dataclass(slots=True)
class SplitBatch:
    records: list[EventRecord] = field(default_factory=list)
    dead: list[DeadLetter] = field(default_factory=list)
    # Highest offset seen per partition, good or bad: what the batch consumed.
    positions: dict[int, int] = field(default_factory=dict)


def split_batch(messages: Iterable[Consumed], now: float, limits: Limits) -> SplitBatch:
    """Decode every message; order is kept within each output list."""
    out = SplitBatch()
    positions = out.positions
    for msg in messages:
        if msg.offset > positions.get(msg.partition, -1):
            positions[msg.partition] = msg.offset
        decoded = decode_interaction(msg.value, now, limits)
        if isinstance(decoded, Rejection):
            out.dead.append(DeadLetter(msg, decoded.reason, decoded.detail))
        else:
            out.records.append(EventRecord(decoded, msg.partition, msg.offset))
    return out


def split_items(
    messages: Iterable[Consumed], now: float, limits: Limits
) -> tuple[list[Item], list[DeadLetter]]:
    """Decode a batch of catalogue messages into items and dead letters, order kept."""
    items: list[Item] = []
    dead: list[DeadLetter] = []
    for msg in messages:
        decoded = decode_item(msg.value, now, limits)
        if isinstance(decoded, Rejection):
            dead.append(DeadLetter(msg, decoded.reason, decoded.detail))
        else:
            items.append(decoded)
    return items, dead


def dead_letter_headers(letter: DeadLetter) -> list[tuple[str, bytes]]:
    """Kafka headers carrying the reason and the source position; the value stays the original."""
    src = letter.source
    return [
        ("dlq.reason", letter.reason.value.encode()),
        ("dlq.detail", letter.detail.encode()),
        ("dlq.topic", src.topic.encode()),
        ("dlq.partition", str(src.partition).encode()),
        ("dlq.offset", str(src.offset).encode()),
    ]
