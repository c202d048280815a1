"""Bytes off the wire to a validated interaction or item, or a rejection with a reason.

Pure: no Kafka, no clock of its own. The reasons are a closed set because they
label a metric and travel with each dead letter.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import TypeVar

from pydantic import ValidationError

from memory_store.events import Interaction, Item

__all__ = ["Limits", "RejectReason", "Rejection", "decode_interaction", "decode_item"]

_Decoded = TypeVar("_Decoded", Interaction, Item)

_ID_FIELDS = frozenset({"event_id", "tenant", "user_id", "item_id"})


class RejectReason(StrEnum):
    """Why a message went to the dead-letter topic."""

    NOT_JSON = "not_json"
    NOT_OBJECT = "not_object"
    OVERSIZED = "oversized"
    MISSING_FIELD = "missing_field"
    WRONG_TYPE = "wrong_type"
    UNKNOWN_TYPE = "unknown_type"
    EMPTY_ID = "empty_id"
    BAD_ID = "bad_id"  # a control character: ids are joined into stored keys
    BAD_TIMESTAMP = "bad_timestamp"
    FUTURE_TIMESTAMP = "future_timestamp"
    TENANT_NOT_ALLOWED = "tenant_not_allowed"
    INVALID = "invalid"


@dataclass(frozen=True, slots=True)
class Rejection:
    reason: RejectReason
    detail: str


@dataclass(frozen=True, slots=True)
class Limits:
    """What a well-formed interaction must respect: ``Settings.limits``, where the defaults live.

    ``tenants`` empty accepts every tenant.
    """

    max_bytes: int
    max_future_skew_s: float
    tenants: frozenset[str]


def decode_interaction(raw: bytes | None, now: float, limits: Limits) -> Interaction | Rejection:
    """Validate one message value; never raises on bad input."""
    return _decode(Interaction, raw, now, limits)


def decode_item(raw: bytes | None, now: float, limits: Limits) -> Item | Rejection:
    """Validate one catalogue message (topic ``items``); never raises on bad input."""
    return _decode(Item, raw, now, limits)


def _decode(
    model: type[_Decoded], raw: bytes | None, now: float, limits: Limits
) -> _Decoded | Rejection:
    if raw is None:
        return Rejection(RejectReason.NOT_JSON, "empty message value")
    if len(raw) > limits.max_bytes:
        return Rejection(RejectReason.OVERSIZED, f"{len(raw)} bytes > {limits.max_bytes}")
    try:
        event = model.model_validate_json(raw)
    except ValidationError as exc:
        return _classify(exc)
    if event.ts > now + limits.max_future_skew_s:
        return Rejection(
            RejectReason.FUTURE_TIMESTAMP,
            f"ts {event.ts:.0f} is {event.ts - now:.0f}s ahead of the worker clock",
        )
    if limits.tenants and event.tenant not in limits.tenants:
        return Rejection(RejectReason.TENANT_NOT_ALLOWED, f"tenant {event.tenant[:64]!r}")
    return event


def _classify(exc: ValidationError) -> Rejection:
    """Map pydantic's first error to one reason, keeping its message as detail."""
    err = exc.errors(include_url=False, include_input=False)[0]
    kind = err["type"]
    field = str(err["loc"][0]) if err["loc"] else ""
    detail = f"{field}: {err['msg']}" if field else err["msg"]
    if kind == "json_invalid":
        reason = RejectReason.NOT_JSON
    elif kind in ("model_type", "model_attributes_type"):
        reason = RejectReason.NOT_OBJECT
    elif kind in ("missing", "missing_value"):
        reason = RejectReason.MISSING_FIELD
    elif field in _ID_FIELDS and kind == "string_too_short":
        reason = RejectReason.EMPTY_ID
    elif field in _ID_FIELDS and kind == "string_pattern_mismatch":
        reason, detail = RejectReason.BAD_ID, f"{field}: holds a control character"
    elif field == "type" and kind == "enum":
        reason = RejectReason.UNKNOWN_TYPE
    elif field == "ts" and kind == "value_error":
        reason = RejectReason.BAD_TIMESTAMP
    elif kind == "value_error":
        reason = RejectReason.INVALID
    else:
        reason = RejectReason.WRONG_TYPE
    return Rejection(reason, detail[:300])
