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
from collections.abc import Sequence
from dataclasses import dataclass

from memory_store.keys import join_key

__all__ = ["ChangeNotice", "decode_notice", "decode_notices", "encode_notice", "encode_notices"]

# Users per batched notice message: ~40 bytes each keeps a message far below 1 MB.
MAX_USERS_PER_MESSAGE = 2000


@dataclass(frozen=True, slots=True)
class ChangeNotice:
    """A user's memory changed; anything cached at a lower version is stale."""

    tenant: str
    user_id: str
    version: int


def encode_notice(notice: ChangeNotice) -> tuple[bytes, bytes]:
    """(key, value) for the changes topic; the key keeps one user's notices in order."""
    key = join_key(notice.tenant, notice.user_id).encode()
    value = json.dumps(
        {"tenant": notice.tenant, "user_id": notice.user_id, "version": notice.version},
        separators=(",", ":"),
    ).encode()
    return key, value


def encode_notices(
    notices: Sequence[ChangeNotice], per_message: int = MAX_USERS_PER_MESSAGE
) -> list[tuple[bytes | None, bytes]]:
    """Many notices in few messages: ``{"version": v, "users": [[tenant, user], ...]}``.

    A batch changes thousands of users at one version; one message per user cost
    the worker more than the write itself. Readers compare versions, so the order
    of messages does not matter and they carry no key.
    """
    by_version: dict[int, list[list[str]]] = {}
    for n in notices:
        by_version.setdefault(n.version, []).append([n.tenant, n.user_id])
    out: list[tuple[bytes | None, bytes]] = []
    for version, users in by_version.items():
        for start in range(0, len(users), per_message):
            body = {"version": version, "users": users[start : start + per_message]}
            out.append((None, json.dumps(body, separators=(",", ":")).encode()))
    return out


def decode_notices(value: bytes | None) -> list[ChangeNotice] | None:
    """The notices in a single or batched message, or None if it is neither (never raises)."""
    try:
        raw = json.loads(value or b"")
    except ValueError:
        return None
    if not isinstance(raw, dict) or "users" not in raw:
        single = decode_notice(value)
        return None if single is None else [single]
    version, users = raw.get("version"), raw["users"]
    if not isinstance(version, int) or isinstance(version, bool) or not isinstance(users, list):
        return None
    out: list[ChangeNotice] = []
    for pair in users:
        if not (isinstance(pair, list) and len(pair) == 2):
            return None
        if not all(isinstance(x, str) for x in pair):
            return None
        out.append(ChangeNotice(pair[0], pair[1], version))
    return out


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
