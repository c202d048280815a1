"""Stored keys cannot be forged across tenants: ids with the separator never reach a key."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from memory_store.events import Interaction
from memory_store.keys import SEPARATOR, join_key
from memory_store.lance.event_rows import event_key
from memory_store.lance.tier_rows import chunk_key, profile_key
from streams.ingest.contract import Limits, Rejection, RejectReason, decode_interaction

LIMITS = Limits(max_bytes=4096, max_future_skew_s=300, tenants=frozenset())
NOW = 1_800_000_000.0

# Ids as the contract accepts them: any text without control characters.
ids = st.text(st.characters(blacklist_categories=("Cc", "Cs")), min_size=1, max_size=12)
# Ids as anyone may send them, the separator and its neighbours included.
hostile = st.text(st.sampled_from(["a", "x", "y", SEPARATOR, "\x1e", "\x00", "é"]), min_size=1,
                  max_size=6)  # fmt: skip


def _decoded(tenant: str, event_id: str) -> Interaction | Rejection:
    raw = {"event_id": event_id, "tenant": tenant, "user_id": "u", "item_id": "i",
           "type": "view", "ts": 1_700_000_000}  # fmt: skip
    return decode_interaction(json.dumps(raw).encode(), NOW, LIMITS)


@given(st.tuples(ids, ids), st.tuples(ids, ids))
def test_keys_of_accepted_ids_are_equal_only_for_the_same_tenant_and_id(
    a: tuple[str, str], b: tuple[str, str]
) -> None:
    for key in (event_key, chunk_key, profile_key):
        assert (key(*a) == key(*b)) == (a == b)


@given(hostile, hostile, hostile, hostile)
def test_two_tenants_never_share_a_stored_key(t1: str, e1: str, t2: str, e2: str) -> None:
    """What passes the contract gets a key no other (tenant, id) gets; the rest is refused."""
    keys: dict[str, tuple[str, str]] = {}
    for tenant, event_id in ((t1, e1), (t2, e2)):
        out = _decoded(tenant, event_id)
        if isinstance(out, Rejection):
            assert out.reason is RejectReason.BAD_ID
            assert any(ord(c) < 0x20 for c in tenant + event_id)
            continue
        key = event_key(out.tenant, out.event_id)
        assert keys.setdefault(key, (tenant, event_id)) == (tenant, event_id)


def test_the_forged_pair_of_the_issue_is_refused_at_the_edge_and_at_the_key() -> None:
    assert event_key("acme", "x") != event_key("acme", "y")
    forged = _decoded("acme\x1fx", "y")
    assert isinstance(forged, Rejection) and forged.reason is RejectReason.BAD_ID
    assert forged.detail == "tenant: holds a control character"
    with pytest.raises(ValueError, match="separator"):
        event_key("acme\x1fx", "y")
    with pytest.raises(ValueError, match="separator"):
        join_key("acme", "x\x1fy")
