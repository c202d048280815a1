"""The batch split and the batch-to-rows mapping, without Kafka or LanceDB."""

from __future__ import annotations

import json

from memory_store.events import Interaction
from memory_store.lance.event_rows import EVENT_SCHEMA, EventRecord, event_key, events_to_table
from streams.ingest.batch import Consumed, dead_letter_headers, split_batch
from streams.ingest.contract import RejectReason
from streams.settings import Settings

NOW = 1_800_000_000.0
# The limits a worker runs with when nothing is configured.
DEFAULTS = Settings(_env_file=None).limits  # type: ignore[call-arg]


def interaction(i: int, tenant: str = "acme", **extra: object) -> dict[str, object]:
    return {
        "event_id": f"e{i}",
        "tenant": tenant,
        "user_id": f"u{i % 3}",
        "item_id": f"i{i}",
        "type": "view",
        "ts": 1_700_000_000 + i,
        **extra,
    }


def msg(offset: int, value: bytes | None, partition: int = 2) -> Consumed:
    return Consumed("interactions", partition, offset, b"k", value)


def test_split_keeps_good_events_around_bad_ones_in_order() -> None:
    values = [
        json.dumps(interaction(0)).encode(),
        b"garbage",
        json.dumps(interaction(1)).encode(),
        json.dumps(interaction(2, type="nope")).encode(),
        json.dumps(interaction(3)).encode(),
    ]
    out = split_batch([msg(10 + i, v) for i, v in enumerate(values)], NOW, DEFAULTS)
    assert [r.event.event_id for r in out.records] == ["e0", "e1", "e3"]
    assert [(r.partition, r.offset) for r in out.records] == [(2, 10), (2, 12), (2, 14)]
    assert [(d.reason, d.source.offset) for d in out.dead] == [
        (RejectReason.NOT_JSON, 11),
        (RejectReason.UNKNOWN_TYPE, 13),
    ]
    assert out.dead[0].source.value == b"garbage"
    assert out.positions == {2: 14}


def test_positions_track_the_highest_offset_per_partition() -> None:
    messages = [msg(5, b"x", partition=0), msg(9, b"x", partition=1), msg(3, b"x", partition=0)]
    assert split_batch(messages, NOW, DEFAULTS).positions == {0: 5, 1: 9}


def test_dead_letter_headers_carry_reason_and_source() -> None:
    out = split_batch([msg(7, b"{}", partition=3)], NOW, DEFAULTS)
    headers = dict(dead_letter_headers(out.dead[0]))
    assert headers["dlq.reason"] == b"missing_field"
    assert headers["dlq.topic"] == b"interactions"
    assert headers["dlq.partition"] == b"3"
    assert headers["dlq.offset"] == b"7"
    assert headers["dlq.detail"].startswith(b"event_id")


def test_rows_match_the_schema_and_the_events() -> None:
    ev = Interaction.model_validate(
        interaction(5, type="rate", value=3.0, text="ok", context={"a": [1, 2]})
    )
    table = events_to_table([EventRecord(ev, 1, 99)], ingested_at=123.0)
    assert table.schema == EVENT_SCHEMA
    (row,) = table.to_pylist()
    assert row == {
        "event_key": event_key("acme", "e5"),
        "tenant": "acme",
        "event_id": "e5",
        "user_id": "u2",
        "item_id": "i5",
        "type": "rate",
        "value": 3.0,
        "ts": 1_700_000_005.0,
        "text": "ok",
        "context": '{"a":[1,2]}',
        "source_partition": 1,
        "source_offset": 99,
        "ingested_at": 123.0,
    }


def test_duplicates_inside_a_batch_collapse_but_tenants_stay_apart() -> None:
    a = Interaction.model_validate(interaction(1))
    b = Interaction.model_validate(interaction(1, tenant="other"))
    table = events_to_table([EventRecord(a, 0, 1), EventRecord(a, 0, 2), EventRecord(b)], 0.0)
    assert table.num_rows == 2
    assert table.column("source_offset").to_pylist() == [1, -1]
    assert sorted(table.column("tenant").to_pylist()) == ["acme", "other"]


def test_empty_batch_gives_an_empty_table() -> None:
    assert events_to_table([], 0.0).num_rows == 0
