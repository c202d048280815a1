"""The notice a worker publishes after it changed a user's memory, and its wire format.

A reader caches each user's memory under the version it last heard of; a notice
with a higher version makes it read again. The version is the Kafka offset of
the user's newest stored event (a user lives in one partition, so it only
grows), or a wall-clock microsecond stamp for changes made by maintenance.
Notices are sent only after the write is durable, so a reader that re-reads on
a notice always sees the change.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

__all__ = ["ChangeNotice", "decode_notice", "encode_notice"]

_SEP = "\x1f"


@dataclass(frozen=True, slots=True)
class ChangeNotice:
    """A user's memory changed; anything cached at a lower version is stale."""

    tenant: str
    user_id: str
    version: int


def encode_notice(notice: ChangeNotice) -> tuple[bytes, bytes]:
    """(key, value) for the changes topic; the key keeps one user's notices in order."""
    key = f"{notice.tenant}{_SEP}{notice.user_id}".encode()
    value = json.dumps(
        {"tenant": notice.tenant, "user_id": notice.user_id, "version": notice.version},
        separators=(",", ":"),
    ).encode()
    return key, value


def decode_notice(value: bytes | None) -> ChangeNotice | None:
    """The notice in ``value``, or None for anything that is not one (never raises)."""
    try:
        raw = json.loads(value or b"")
        tenant, user_id, version = raw["tenant"], raw["user_id"], raw["version"]
    except (ValueError, TypeError, KeyError):
        return None
    if not (isinstance(tenant, str) and isinstance(user_id, str)):
        return None
    if not isinstance(version, int) or isinstance(version, bool):
        return None
    return ChangeNotice(tenant, user_id, version)
