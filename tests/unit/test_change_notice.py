"""The change-notice wire format: single and batched messages round-trip; garbage is refused."""

from __future__ import annotations

import json

from hypothesis import given
from hypothesis import strategies as st

from memory_store.change_notice import (
    ChangeNotice,
    decode_notice,
    decode_notices,
    encode_notice,
    encode_notices,
)

# Ids as the contract admits them (no control characters: ``memory_store.keys``).
ids = st.text(st.characters(blacklist_categories=("Cc", "Cs")), min_size=1, max_size=12)
notices = st.lists(st.builds(ChangeNotice, ids, ids, st.integers(0, 2**62)), max_size=60)


@given(notices, st.integers(1, 7))
def test_batched_notices_round_trip_in_messages_of_bounded_size(
    sent: list[ChangeNotice], per_message: int
) -> None:
    messages = encode_notices(sent, per_message)
    received = [n for _, value in messages for n in decode_notices(value) or []]
    assert sorted(received, key=repr) == sorted(sent, key=repr)
    assert all(len(json.loads(v)["users"]) <= per_message for _, v in messages)
    assert all(key is None for key, _ in messages)


@given(st.builds(ChangeNotice, ids, ids, st.integers(0, 2**62)))
def test_a_single_notice_decodes_either_way(notice: ChangeNotice) -> None:
    key, value = encode_notice(notice)
    assert key == f"{notice.tenant}\x1f{notice.user_id}".encode()
    assert decode_notice(value) == notice
    assert decode_notices(value) == [notice]


@given(st.binary(max_size=80))
def test_arbitrary_bytes_never_raise(raw: bytes) -> None:
    decode_notices(raw)
    decode_notice(raw)


def test_malformed_messages_are_refused() -> None:
    bad = [
        None,
        b"",
        b"[]",
        b'{"version": "1", "users": []}',
        b'{"version": true, "users": []}',
        b'{"version": 1, "users": [["a"]]}',
        b'{"version": 1, "users": [["a", 2]]}',
        b'{"version": 1, "users": "ab"}',
        b'{"tenant": "a", "user_id": "b"}',
    ]
    assert [decode_notices(v) for v in bad] == [None] * len(bad)
