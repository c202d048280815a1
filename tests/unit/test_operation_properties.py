"""Properties of the lifecycle that must hold for any user, any events, any memory."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from memory_store.events import Interaction, Item
from memory_store.lifecycle import absorb
from memory_store.operations import (
    LifecycleParams,
    consolidation,
    decay_time,
    effective_strength,
    extraction,
    forgetting,
    reinforcement,
    resynthesis,
    weakening,
)
from memory_store.tiers import (
    MAX_EVIDENCE,
    Delta,
    Polarity,
    PreferenceChunk,
    UserSnapshot,
    apply_delta,
    bounded_evidence,
    chunk_id_for,
)
from tests.unit.fake_embedding import fake_embed

P = LifecycleParams()
OWNER = ("acme", "u1")
GENRES = ["Comedy", "Drama", "Horror", "Sci-Fi", "unknown"]
KINDS = ["view", "click", "like", "dislike", "rate", "purchase", "skip", "play", "complete"]


@st.composite
def catalogues(draw: st.DrawFn) -> dict[str, Item]:
    items = {}
    for i in range(draw(st.integers(3, 6))):
        genres = draw(st.lists(st.sampled_from(GENRES), min_size=1, max_size=3))
        attrs: dict[str, Any] = {"genres": genres}
        if draw(st.booleans()):
            attrs["year"] = draw(st.one_of(st.integers(1900, 2030), st.just("odd"), st.none()))
        tenant = draw(st.sampled_from(["acme"] * 5 + ["evil"]))
        items[f"i{i}"] = Item(tenant=tenant, item_id=f"i{i}", title="t", attributes=attrs, ts=0)
    return items


@st.composite
def event_lists(draw: st.DrawFn, max_size: int = 60) -> list[Interaction]:
    n = draw(st.integers(0, max_size))
    out = []
    for i in range(n):
        kind = draw(st.sampled_from(KINDS))
        tenant, user = draw(st.sampled_from([OWNER, OWNER, OWNER, ("acme", "u2"), ("evil", "u1")]))
        out.append(
            Interaction.model_validate(
                {
                    "event_id": f"e{i}",
                    "tenant": tenant,
                    "user_id": user,
                    "item_id": f"i{draw(st.integers(0, 6))}",
                    "type": kind,
                    "value": float(draw(st.integers(1, 5))) if kind == "rate" else None,
                    "ts": float(draw(st.integers(0, 40))),  # ties and disorder on purpose
                }
            )
        )
    return out


@st.composite
def chunk_sets(draw: st.DrawFn) -> tuple[PreferenceChunk, ...]:
    keys = draw(st.lists(st.sampled_from([g.lower() for g in GENRES]), unique=True, max_size=5))
    vectors = [(1.0, 0.0), (0.99, 0.05), (0.0, 1.0), (0.0, 0.0)]
    chunks = []
    for key in keys:
        pairs = draw(
            st.lists(st.tuples(st.text("abcdef", min_size=1, max_size=3), st.integers(0, 50)))
        )
        ids, times = bounded_evidence([(e, float(t)) for e, t in pairs])
        last = max([*times, 0.0]) + draw(st.integers(0, 10))
        chunks.append(
            PreferenceChunk(
                chunk_id=chunk_id_for(*OWNER, "genre", key),
                tenant=OWNER[0],
                user_id=OWNER[1],
                facet="genre",
                key=key,
                topic=key,
                text=f"likes {key}",
                embedding=draw(st.sampled_from(vectors)),
                polarity=draw(st.sampled_from(Polarity)),
                strength=draw(st.floats(0.0, 1.0)),
                evidence=ids,
                evidence_ts=times,
                evidence_count=len(ids) + draw(st.integers(0, 100)),
                first_seen=min([*times, last]),
                last_seen=last,
                through=draw(st.integers(-1, 60)),
            )
        )
    return tuple(chunks)


def learn(
    snap: UserSnapshot,
    events: Sequence[Interaction],
    items: dict[str, Item],
    positions: Sequence[int] | None = None,
) -> UserSnapshot:
    """The events folded in, at ``positions`` (default: their place in ``events``)."""
    places = list(range(len(events))) if positions is None else positions
    return apply_delta(snap, absorb(snap, events, items, P, fake_embed, None, places))


def all_deltas(
    snap: UserSnapshot, events: list[Interaction], items: dict[str, Item]
) -> list[Delta]:
    return [
        extraction(snap, events, items, P, fake_embed),
        reinforcement(snap, events, items, P),
        weakening(snap, events, items, P),
        consolidation(snap, replace(P, similarity_threshold=0.9)),
        forgetting(snap, 60.0, replace(P, half_life=20.0, event_ttl=30.0, max_events_per_user=5)),
        resynthesis(snap, 60.0, P, fake_embed),
    ]


EMPTY = UserSnapshot(*OWNER)
FAST = settings(max_examples=60, deadline=None)


@FAST
@given(catalogues(), event_lists(), st.integers(0, 60))
def test_replaying_events_leaves_memory_unchanged(
    items: dict[str, Item], events: list[Interaction], split: int
) -> None:
    at = list(range(len(events)))
    snap = learn(learn(EMPTY, events[:split], items, at[:split]), events[split:], items, at[split:])
    assert learn(snap, events, items) == snap
    assert learn(snap, events[::-1], items, at[::-1]) == snap


@FAST
@given(catalogues(), event_lists(max_size=100))
def test_replay_stays_a_no_op_after_evidence_overflows(
    items: dict[str, Item], events: list[Interaction]
) -> None:
    many = [
        e.model_copy(update={"event_id": f"{e.event_id}-{k}"}) for k in range(3) for e in events
    ]
    snap = learn(EMPTY, many, items)
    assert all(len(c.evidence) <= MAX_EVIDENCE for c in snap.chunks)
    assert learn(snap, many, items) == snap


@FAST
@given(catalogues(), event_lists(), chunk_sets())
def test_strength_stays_in_unit_interval(
    items: dict[str, Item], events: list[Interaction], chunks: tuple[PreferenceChunk, ...]
) -> None:
    snap = learn(UserSnapshot(*OWNER, chunks), events, items)
    snap = apply_delta(snap, consolidation(snap, replace(P, similarity_threshold=0.5)))
    for c in snap.chunks:
        assert 0.0 <= c.strength <= 1.0
    for d in all_deltas(snap, events, items):
        assert all(0.0 <= c.strength <= 1.0 for c in d.upserts)


@FAST
@given(chunk_sets(), st.floats(0.0, 1.0))
def test_consolidation_preserves_total_evidence_count(
    chunks: tuple[PreferenceChunk, ...], threshold: float
) -> None:
    snap = UserSnapshot(*OWNER, chunks)
    after = apply_delta(snap, consolidation(snap, replace(P, similarity_threshold=threshold)))
    assert sum(c.evidence_count for c in after.chunks) == sum(c.evidence_count for c in chunks)
    assert len(after.chunks) <= len(chunks)


@FAST
@given(chunk_sets(), event_lists(), st.floats(0.0, 200.0), st.integers(0, 10), st.integers(0, 4))
def test_forgetting_respects_threshold_and_retention(
    chunks: tuple[PreferenceChunk, ...],
    events: list[Interaction],
    now: float,
    cap: int,
    floor: int,
) -> None:
    own = [e for e in events if (e.tenant, e.user_id) == OWNER]
    snap = UserSnapshot(*OWNER, chunks, events=tuple(own))
    params = replace(P, half_life=30.0, event_ttl=25.0, max_events_per_user=cap,
                     min_events_per_user=floor)  # fmt: skip
    delta = forgetting(snap, now, params)
    for c in chunks:
        deleted = c.chunk_id in delta.deletes
        decayed = effective_strength(c, decay_time(snap, now, params), params)
        assert deleted == (decayed < params.forget_threshold)
    # time, then the order given (the stream's): the newest are the last given
    newest = sorted(own, key=lambda e: e.ts)[::-1][:cap]
    retained = {e.event_id for rank, e in enumerate(newest)
                if e.ts >= now - params.event_ttl or rank < params.min_events_per_user}  # fmt: skip
    assert retained.isdisjoint(delta.forget_event_ids)
    assert set(delta.forget_event_ids) == {e.event_id for e in own} - retained


@FAST
@given(chunk_sets(), event_lists(), st.floats(0.0, 1e7))
def test_on_the_users_clock_idleness_alone_forgets_no_belief(
    chunks: tuple[PreferenceChunk, ...], events: list[Interaction], idle: float
) -> None:
    own = [e for e in events if (e.tenant, e.user_id) == OWNER]
    snap = UserSnapshot(*OWNER, chunks, events=tuple(own))
    params = replace(P, half_life=30.0)
    last = max([e.ts for e in own] + [c.last_seen for c in chunks], default=0.0)
    assert forgetting(snap, last + idle, params).deletes == forgetting(snap, last, params).deletes
    everybody = replace(params, decay_clock="global")
    assert set(forgetting(snap, last, everybody).deletes) <= set(
        forgetting(snap, last + idle, everybody).deletes
    )


@FAST
@given(catalogues(), event_lists(), chunk_sets())
def test_apply_delta_twice_equals_once(
    items: dict[str, Item], events: list[Interaction], chunks: tuple[PreferenceChunk, ...]
) -> None:
    own = tuple(e for e in events if (e.tenant, e.user_id) == OWNER)
    snap = UserSnapshot(*OWNER, chunks, events=own)
    deltas = all_deltas(snap, events, items)
    for d in [*deltas, Delta.merge(*deltas)]:
        once = apply_delta(snap, d)
        assert apply_delta(once, d) == once


@FAST
@given(catalogues(), event_lists(), chunk_sets(), st.sampled_from([("acme", "u2"), ("evil", "u1")]))
def test_operations_never_touch_another_user(
    items: dict[str, Item],
    events: list[Interaction],
    chunks: tuple[PreferenceChunk, ...],
    stranger: tuple[str, str],
) -> None:
    snap = learn(UserSnapshot(*OWNER, chunks), events, items)
    for d in all_deltas(snap, events, items):
        owners = {(c.tenant, c.user_id) for c in d.upserts}
        owners |= {(r.tenant, r.user_id) for r in d.changes}
        if d.profile is not None:
            owners.add((d.profile.tenant, d.profile.user_id))
        assert owners <= {OWNER}
    foreign_events = {e.event_id for e in events if (e.tenant, e.user_id) != OWNER}
    for c in snap.chunks:
        assert set(c.evidence).isdisjoint(foreign_events)
    if snap.chunks:
        c = snap.chunks[0]
        foreign = replace(
            c,
            tenant=stranger[0],
            user_id=stranger[1],
            chunk_id=chunk_id_for(*stranger, c.facet, c.key),
        )
        with pytest.raises(ValueError, match="another tenant or user"):
            apply_delta(snap, Delta(upserts=(foreign,)))


@FAST
@given(chunk_sets(), st.sampled_from(["dislike", "like"]), st.integers(1, 12))
def test_strong_contradiction_flips_instead_of_deleting(
    chunks: tuple[PreferenceChunk, ...], kind: str, repeats: int
) -> None:
    snap = UserSnapshot(*OWNER, chunks)
    items = {k: Item(tenant="acme", item_id=k, title=k, attributes={"genres": [k]}, ts=0)
             for k in ("comedy", "drama", "horror", "sci-fi")}  # fmt: skip
    for i in range(repeats):
        before = snap.chunk_index()
        events = [
            Interaction(event_id=f"x{i}-{k}", tenant="acme", user_id="u1", item_id=k,
                        type=kind, ts=100.0 + i)  # type: ignore[arg-type]
            for k in items
        ]  # fmt: skip
        delta = weakening(snap, events, items, P)
        assert delta.deletes == ()
        snap = apply_delta(snap, delta)
        assert set(snap.chunk_index()) == set(before)
        for c in delta.upserts:
            old = before[c.chunk_id]
            weakened = P.decayed(old.strength, 100.0 + i - old.last_seen) * (1 - P.weakening_rate)
            if weakened < P.flip_threshold:
                assert c.polarity is old.polarity.flipped()
                assert c.strength == pytest.approx(P.flip_strength)
            else:
                assert c.polarity is old.polarity
