"""The event contract: what an interaction and a catalogue item look like.

These models are the single definition of both Kafka topics' JSON values and
of the event tier's rows; they know nothing of Kafka.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, model_validator
from pydantic_core import PydanticCustomError

from memory_store.keys import ID_PATTERN

__all__ = ["EventType", "Interaction", "Item", "parse_timestamp"]

# No control characters: ids are joined into stored keys (``memory_store.keys``).
Id = Annotated[str, Field(min_length=1, max_length=256, strict=True, pattern=ID_PATTERN)]


class EventType(StrEnum):
    """The interaction kinds the memory understands."""

    VIEW = "view"
    CLICK = "click"
    LIKE = "like"
    DISLIKE = "dislike"
    RATE = "rate"
    PURCHASE = "purchase"
    SKIP = "skip"
    ADD_TO_CART = "add_to_cart"
    SHARE = "share"
    PLAY = "play"
    COMPLETE = "complete"


def parse_timestamp(value: object) -> float:
    """Epoch seconds from a number or an ISO-8601 string (naive means UTC)."""
    if isinstance(value, bool):
        raise ValueError("timestamp must be epoch seconds or ISO-8601, not a boolean")
    if isinstance(value, int | float):
        ts = float(value)
    elif isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError as exc:
            raise ValueError(f"not an ISO-8601 timestamp: {value[:40]!r}") from exc
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=UTC)
        ts = parsed.timestamp()
    else:
        raise ValueError("timestamp must be epoch seconds or ISO-8601")
    if not math.isfinite(ts) or ts < 0:
        raise ValueError("timestamp must be a finite, non-negative epoch")
    return ts


Timestamp = Annotated[float, BeforeValidator(parse_timestamp)]


class Interaction(BaseModel):
    """One user's interaction with one item (topic ``interactions``, key = user id)."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    event_id: Id
    tenant: Id
    user_id: Id
    item_id: Id
    type: EventType
    value: float | None = Field(default=None, strict=True, allow_inf_nan=False)
    ts: Timestamp
    text: str | None = Field(default=None, max_length=8192, strict=True)
    context: dict[str, Any] | None = None

    @model_validator(mode="after")
    def _rating_has_value(self) -> Interaction:
        if self.type is EventType.RATE and self.value is None:
            raise PydanticCustomError("missing_value", "a 'rate' event needs a value")
        return self


class Item(BaseModel):
    """One catalogue item (topic ``items``, key = item id)."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    tenant: Id
    item_id: Id
    title: str = Field(min_length=1, max_length=1024, strict=True)
    text: str | None = Field(default=None, max_length=16384, strict=True)
    attributes: dict[str, Any] = Field(default_factory=dict)
    ts: Timestamp
