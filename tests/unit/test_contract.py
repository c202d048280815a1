"""Validation: every kind of bad input gets its own reason; good input passes."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from memory_store.events import EventType, Interaction
from streams.ingest.contract import Limits, Rejection, RejectReason, decode_interaction

NOW = 1_800_000_000.0
LIMITS = Limits(max_bytes=2048, max_future_skew_s=300, tenants=frozenset())


def good(**overrides: Any) -> dict[str, Any]:
    event: dict[str, Any] = {
        "event_id": "e1",
        "tenant": "acme",
        "user_id": "u1",
        "item_id": "i1",
        "type": "rate",
        "value": 4.5,
        "ts": 1_700_000_000,
        "text": "loved it",
        "context": {"device": "tv"},
    }
    event.update(overrides)
    return event


def encode(obj: object) -> bytes:
    return json.dumps(obj).encode()


def reason_of(raw: bytes | None, limits: Limits = LIMITS) -> RejectReason:
    out = decode_interaction(raw, NOW, limits)
    assert isinstance(out, Rejection), out
    return out.reason


def test_good_event_is_accepted_with_all_fields() -> None:
    out = decode_interaction(encode(good()), NOW, LIMITS)
    assert isinstance(out, Interaction)
    assert out.type is EventType.RATE
    assert out.value == 4.5
    assert out.ts == 1_700_000_000.0
    assert out.context == {"device": "tv"}


def test_iso_timestamps_and_optional_fields() -> None:
    raw = encode(
        {k: v for k, v in good(ts="2023-11-14T22:13:20Z", type="view").items()
         if k not in ("value", "text", "context")}
    )  # fmt: skip
    out = decode_interaction(raw, NOW, LIMITS)
    assert isinstance(out, Interaction)
    assert out.ts == 1_700_000_000.0
    naive = decode_interaction(encode(good(ts="2023-11-14T22:13:20")), NOW, LIMITS)
    assert isinstance(naive, Interaction) and naive.ts == 1_700_000_000.0


def test_unknown_fields_are_ignored() -> None:
    assert isinstance(decode_interaction(encode(good(extra=1)), NOW, LIMITS), Interaction)


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"not json at all", RejectReason.NOT_JSON),
        (b"", RejectReason.NOT_JSON),
        (None, RejectReason.NOT_JSON),
        (b'{"event_id": "e1", ', RejectReason.NOT_JSON),
        (encode([1, 2, 3]), RejectReason.NOT_OBJECT),
        (encode("a string"), RejectReason.NOT_OBJECT),
        (encode({k: v for k, v in good().items() if k != "user_id"}), RejectReason.MISSING_FIELD),
        (encode({k: v for k, v in good().items() if k != "ts"}), RejectReason.MISSING_FIELD),
        (encode(good(type="rate", value=None)), RejectReason.MISSING_FIELD),
        (encode(good(user_id=42)), RejectReason.WRONG_TYPE),
        (encode(good(value="4.5")), RejectReason.WRONG_TYPE),
        (encode(good(context=[1, 2])), RejectReason.WRONG_TYPE),
        (encode(good(text=7)), RejectReason.WRONG_TYPE),
        (encode(good(type="teleport")), RejectReason.UNKNOWN_TYPE),
        (encode(good(event_id="")), RejectReason.EMPTY_ID),
        (encode(good(tenant="")), RejectReason.EMPTY_ID),
        (encode(good(item_id="")), RejectReason.EMPTY_ID),
        (encode(good(tenant="acme\x1fx")), RejectReason.BAD_ID),
        (encode(good(event_id="x\x1fy")), RejectReason.BAD_ID),
        (encode(good(user_id="u\n1")), RejectReason.BAD_ID),
        (encode(good(item_id="\x00")), RejectReason.BAD_ID),
        (encode(good(ts="yesterday")), RejectReason.BAD_TIMESTAMP),
        (encode(good(ts=True)), RejectReason.BAD_TIMESTAMP),
        (encode(good(ts=-5)), RejectReason.BAD_TIMESTAMP),
        (encode(good(ts=NOW + 3600)), RejectReason.FUTURE_TIMESTAMP),
        (encode(good(ts=(NOW + 3600) * 1000)), RejectReason.FUTURE_TIMESTAMP),
        (encode(good(text="x" * 4000)), RejectReason.OVERSIZED),
    ],
)
def test_each_bad_input_kind_has_its_reason(raw: bytes | None, reason: RejectReason) -> None:
    assert reason_of(raw) is reason


def test_small_future_skew_is_tolerated() -> None:
    assert isinstance(decode_interaction(encode(good(ts=NOW + 60)), NOW, LIMITS), Interaction)


def test_tenant_allow_list() -> None:
    limits = Limits(max_bytes=64 * 1024, max_future_skew_s=300.0, tenants=frozenset({"acme"}))
    assert isinstance(decode_interaction(encode(good()), NOW, limits), Interaction)
    assert reason_of(encode(good(tenant="other")), limits) is RejectReason.TENANT_NOT_ALLOWED


def test_rejection_detail_names_the_field() -> None:
    out = decode_interaction(encode(good(user_id=42)), NOW, LIMITS)
    assert isinstance(out, Rejection) and out.detail.startswith("user_id")


@settings(deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=300))
def test_arbitrary_bytes_never_raise(raw: bytes) -> None:
    out = decode_interaction(raw, NOW, LIMITS)
    assert isinstance(out, Interaction | Rejection)


@settings(deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.dictionaries(
        st.sampled_from(["event_id", "tenant", "user_id", "item_id", "type", "value", "ts"]),
        st.one_of(st.none(), st.integers(), st.floats(allow_nan=False), st.text(max_size=5)),
    )
)
def test_arbitrary_objects_are_accepted_only_when_valid(obj: dict[str, Any]) -> None:
    out = decode_interaction(encode(obj), NOW, LIMITS)
    if isinstance(out, Interaction):
        assert all(out.model_dump()[k] for k in ("event_id", "tenant", "user_id", "item_id"))
        assert out.ts <= NOW + LIMITS.max_future_skew_s
