"""The tier values, apply_delta's rules, and how signals read as evidence."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from memory_store.events import EventType, Interaction, Item
from memory_store.signals import evidence_weight, facet_evidence, item_facets
from memory_store.tiers import (
    MAX_EVIDENCE,
    ChangeRecord,
    Delta,
    Operation,
    Polarity,
    PreferenceChunk,
    Profile,
    UserSnapshot,
    _appended_evidence,
    apply_delta,
    bounded_evidence,
    chunk_id_for,
)


def chunk(
    key: str = "comedy",
    *,
    tenant: str = "acme",
    user: str = "u1",
    strength: float = 0.5,
    polarity: Polarity = Polarity.LIKE,
    ts: float = 100.0,
) -> PreferenceChunk:
    return PreferenceChunk(
        chunk_id=chunk_id_for(tenant, user, "genre", key),
        tenant=tenant,
        user_id=user,
        facet="genre",
        key=key,
        topic=key.title(),
        text=f"likes {key.title()}",
        embedding=(1.0, 0.0),
        polarity=polarity,
        strength=strength,
        evidence=("e0",),
        evidence_ts=(ts,),
        evidence_count=1,
        first_seen=ts,
        last_seen=ts,
    )


def event(i: int, kind: str = "like", value: float | None = None, **kw: Any) -> Interaction:
    fields: dict[str, Any] = {
        "event_id": f"e{i}",
        "tenant": "acme",
        "user_id": "u1",
        "item_id": "m1",
        "type": kind,
        "value": value,
        "ts": 1000 + i,
    }
    fields.update(kw)
    return Interaction.model_validate(fields)


def item(attributes: dict[str, Any], tenant: str = "acme") -> Item:
    return Item(tenant=tenant, item_id="m1", title="A film", attributes=attributes, ts=0)


def test_chunk_id_is_stable_across_polarity_and_scoped_to_the_user() -> None:
    like, dislike = chunk(polarity=Polarity.LIKE), chunk(polarity=Polarity.DISLIKE)
    assert like.chunk_id == dislike.chunk_id
    assert chunk(user="u2").chunk_id != like.chunk_id
    assert chunk(tenant="other").chunk_id != like.chunk_id


def test_chunk_rejects_bad_values() -> None:
    with pytest.raises(ValueError, match="strength"):
        chunk(strength=1.5)
    with pytest.raises(ValueError, match="chunk_id"):
        replace(chunk(), key="drama")


def test_bounded_evidence_keeps_the_most_recent() -> None:
    pairs = [(f"e{i}", float(i)) for i in range(40)]
    ids, times = bounded_evidence(reversed(pairs))
    assert len(ids) == MAX_EVIDENCE
    assert ids[0] == "e8" and ids[-1] == "e39"
    assert list(times) == sorted(times)


def test_add_evidence_counts_by_stream_position_not_by_the_bounded_list() -> None:
    c = chunk(ts=0.0)
    for i in range(1, 50):
        c = c.add_evidence(f"e{i}", 7.0, position=i)  # one second: ties do not matter
    assert c.evidence_count == 50 and c.version == 50
    assert len(c.evidence) == MAX_EVIDENCE and c.through == 49
    assert c.has_counted(3)  # long dropped from the list, still counted
    assert c.has_counted(49)
    assert not c.has_counted(50)
    assert (c.first_seen, c.last_seen) == (0.0, 7.0)


@given(
    ts=st.floats(0.0, 500.0),
    strength=st.none() | st.floats(0.0, 1.0),
    aliases=st.sampled_from([(), ("drama",)]),
    version=st.integers(1, 5),
)
def test_add_evidence_equals_replacing_the_evidence_fields(
    ts: float, strength: float | None, aliases: tuple[str, ...], version: int
) -> None:
    # The fast path builds the chunk field by field: it must equal ``replace`` on every field.
    base = replace(chunk(ts=100.0), aliases=aliases, version=version, through=50)
    changes = {} if strength is None else {"strength": strength}
    got = base.add_evidence("e9", ts, 51, **changes)
    ids, times = _appended_evidence(base.evidence, base.evidence_ts, "e9", ts)
    expected = replace(base, evidence=ids, evidence_ts=times, through=51, version=version + 1,
                       evidence_count=2, first_seen=min(100.0, ts), last_seen=max(100.0, ts),
                       **changes)  # fmt: skip
    assert got == expected
    flipped = base.add_evidence("e9", ts, 51, strength=0.2, polarity=Polarity.DISLIKE)
    assert flipped == replace(expected, strength=0.2, polarity=Polarity.DISLIKE)


def test_snapshot_is_canonical_and_refuses_foreign_memory() -> None:
    a, b = chunk("comedy"), chunk("drama")
    assert UserSnapshot("acme", "u1", (a, b)) == UserSnapshot("acme", "u1", (b, a))
    with pytest.raises(ValueError, match="another"):
        UserSnapshot("acme", "u1", (chunk(user="u2"),))
    with pytest.raises(ValueError, match="another"):
        UserSnapshot("acme", "u1", events=(event(1, user_id="u2"),))
    with pytest.raises(ValueError, match="duplicate"):
        UserSnapshot("acme", "u1", (a, a))


def test_apply_delta_upserts_deletes_profile_and_forgets_events() -> None:
    snap = UserSnapshot("acme", "u1", (chunk("comedy"), chunk("drama")), events=(event(1),))
    stronger = replace(chunk("comedy"), strength=0.9, version=2)
    profile = Profile("acme", "u1", "Enjoys Comedy.", (1.0,), 1, ((stronger.chunk_id, 2),), 5.0)
    delta = Delta(
        upserts=(stronger,),
        deletes=(chunk("drama").chunk_id,),
        profile=profile,
        forget_event_ids=("e1",),
    )
    once = apply_delta(snap, delta)
    assert once.chunks == (stronger,)
    assert once.profile == profile
    assert once.events == ()
    assert apply_delta(once, delta) == once
    assert apply_delta(snap, Delta.empty()) == snap


@pytest.mark.parametrize(
    "delta",
    [
        Delta(upserts=(chunk(user="u2"),)),
        Delta(upserts=(chunk(tenant="evil"),)),
        Delta(profile=Profile("acme", "u2", "x", (), 1, (), 0.0)),
        Delta(
            changes=(
                ChangeRecord(Operation.EXTRACTION, "evil", "u1", None, None, None, (), None, ""),
            )
        ),
    ],
)
def test_apply_delta_rejects_another_users_memory(delta: Delta) -> None:
    with pytest.raises(ValueError, match="another tenant or user"):
        apply_delta(UserSnapshot("acme", "u1"), delta)


def test_merge_applies_deltas_in_order() -> None:
    a = chunk("comedy")
    revived = Delta.merge(Delta(deletes=(a.chunk_id,)), Delta(upserts=(a,)))
    assert revived.upserts == (a,) and revived.deletes == ()
    removed = Delta.merge(Delta(upserts=(a,)), Delta(deletes=(a.chunk_id,)))
    assert removed.upserts == () and removed.deletes == (a.chunk_id,)
    assert Delta.merge().is_empty


@pytest.mark.parametrize(
    ("kind", "value", "expected"),
    [
        ("like", None, 1.0),
        ("purchase", None, 0.9),
        ("dislike", None, -1.0),
        ("view", None, 0.1),
        ("rate", 5.0, 1.0),
        ("rate", 4.0, 0.5),
        ("rate", 3.0, 0.0),
        ("rate", 1.0, -1.0),
        ("rate", 10.0, 1.0),
    ],
)
def test_evidence_weight(kind: str, value: float | None, expected: float) -> None:
    assert evidence_weight(event(1, kind, value)) == pytest.approx(expected)


def test_every_event_type_has_a_weight_in_range() -> None:
    for kind in EventType:
        w = evidence_weight(event(1, kind.value, 2.0))
        assert -1.0 <= w <= 1.0
    assert evidence_weight(event(1, "skip")) < 0 < evidence_weight(event(1, "click"))


def test_item_facets_reads_genres_and_era() -> None:
    facets = item_facets(item({"genres": ["Comedy", "Drama", "unknown", "comedy"], "year": 1995}))
    assert facets == [
        ("genre", "comedy", "Comedy"),
        ("genre", "drama", "Drama"),
        ("era", "1990s", "1990s"),
    ]
    assert item_facets(item({"genre": "Action|Sci-Fi", "year": "1987"})) == [
        ("genre", "action", "Action"),
        ("genre", "sci-fi", "Sci-Fi"),
        ("era", "1980s", "1980s"),
    ]


@pytest.mark.parametrize(
    "attributes",
    [{}, {"genres": None, "year": None}, {"genres": 7, "year": True}, {"genres": [1, {}]},
     {"year": "soon"}, {"year": float("nan")}, {"genres": "(no genres listed)"}],
)  # fmt: skip
def test_item_facets_ignores_odd_attributes(attributes: dict[str, Any]) -> None:
    assert item_facets(item(attributes)) == []


def test_facet_evidence_keeps_to_one_user_and_tenant() -> None:
    items = {"m1": item({"genres": ["Comedy"]})}
    events = [event(1), event(2, user_id="u2"), event(3, tenant="evil"), event(4, "rate", 3.0)]
    found = facet_evidence("acme", "u1", events, items, 0.05)
    # e1 (a like) is satisfaction and engagement; e4 (3 stars of a new user) engagement only.
    assert [(f.event_id, f.facet) for f in found] == [
        ("e1", "genre"),
        ("e1", "engagement"),
        ("e4", "engagement"),
    ]
    foreign_items = {"m1": item({"genres": ["Comedy"]}, tenant="evil")}
    assert facet_evidence("acme", "u1", events, foreign_items, 0.05) == []


@given(
    st.lists(
        st.tuples(st.sampled_from("abcdefghijklmnopqrstuvwxyz0123456789"), st.integers(0, 60)),
        max_size=120,
    )
)
def test_the_append_fast_path_equals_the_general_bound(pairs: list[tuple[str, int]]) -> None:
    fast: tuple[tuple[str, ...], tuple[float, ...]] = ((), ())
    general = fast
    for event_id, ts in pairs:
        fast = _appended_evidence(*fast, event_id, float(ts))
        ids, times = general
        general = bounded_evidence([*zip(ids, times, strict=True), (event_id, float(ts))])
        assert fast == general
