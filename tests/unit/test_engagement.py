"""Engagement beliefs: what a user keeps choosing, apart from how they rate it."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from memory_store.engagement import PRIOR, is_engagement
from memory_store.events import EventType, Interaction
from memory_store.operations import absorb_stream
from memory_store.operations.resynthesis import template_narrative, top_chunks
from memory_store.tiers import UserSnapshot, apply_delta
from tests.unit.fake_embedding import fake_embed
from tests.unit.test_fold_determinism import EMPTY, P, beliefs, item, rating
from tests.unit.test_rating_norm import fold


def engagement(snap: UserSnapshot) -> dict[str, float]:
    return {c.key: c.strength for c in snap.chunks if is_engagement(c)}


def test_dramas_rated_at_the_users_average_are_no_taste_but_a_strong_choice() -> None:
    snap = fold([3.0] * 30 + [5.0], ["Drama"] * 30 + ["Comedy"])
    assert "drama" not in {c.key for c in beliefs(snap)}  # never above or below their norm
    chosen = engagement(snap)
    # n / (n + PRIOR), decayed a hair over the half minute the ratings took
    assert chosen["genre:drama"] == pytest.approx(30 / (30 + PRIOR), rel=1e-4)
    assert chosen["genre:drama"] > chosen["genre:comedy"] == pytest.approx(1 / (1 + PRIOR))


@settings(max_examples=30, deadline=None)
@given(st.integers(1, 400), st.integers(1, 400))
def test_engagement_orders_topics_by_how_often_they_were_chosen_without_saturating(
    dramas: int, comedies: int
) -> None:
    chosen = engagement(
        fold([4.0] * (dramas + comedies), ["Drama"] * dramas + ["Comedy"] * comedies)
    )
    drama, comedy = chosen["genre:drama"], chosen["genre:comedy"]
    assert (drama > comedy) == (dramas > comedies) and (drama == comedy) == (dramas == comedies)
    assert drama <= 400 / (400 + PRIOR) < 0.99


def test_skips_and_dislikes_are_not_choices() -> None:
    catalogue = {"i0": item(0, ["Horror"])}
    events = [
        Interaction(event_id=f"e{n}", tenant="acme", user_id="u1", item_id="i0", type=kind, ts=1.0)
        for n, kind in enumerate([EventType.SKIP, EventType.DISLIKE])
    ]
    snap = apply_delta(EMPTY, absorb_stream(EMPTY, events, catalogue, P, fake_embed).delta)
    assert engagement(snap) == {} and [c.key for c in beliefs(snap)] == ["horror"]


def test_the_narrative_gives_choices_at_most_half_its_room() -> None:
    # Ten genres chosen 12 times each, all rated at the user's usual 4 stars: every choice
    # is stronger than any taste, and still takes only half the narrative.
    genres = [f"G{n}" for n in range(10)]
    snap = fold([4.0] * 120, [genres[n % 10] for n in range(120)])
    assert min(engagement(snap).values()) > max(c.strength for c in beliefs(snap))
    top = top_chunks(snap, 2_000.0, P)
    assert len(top) == P.narrative_top_k
    assert sum(is_engagement(c) for c in top) == P.narrative_top_k // 2
    assert template_narrative(top).startswith("Mostly chooses ")


def test_a_rating_counts_once_as_a_choice_whatever_the_batches() -> None:
    catalogue = {"i0": item(0, ["Drama"])}
    events = [rating(n, "i0", 4.0, 1_000.0) for n in range(12)]
    one = apply_delta(EMPTY, absorb_stream(EMPTY, events, catalogue, P, fake_embed).delta)
    snap = EMPTY
    for start in range(0, 12, 5):
        part = events[start : start + 5]
        at = list(range(start, start + len(part)))
        snap = apply_delta(
            snap, absorb_stream(snap, part, catalogue, P, fake_embed, None, at).delta
        )
    again = absorb_stream(snap, events, catalogue, P, fake_embed, None, list(range(12)))
    assert engagement(snap) == engagement(one) and again.delta.is_empty
    assert [c.evidence_count for c in snap.chunks if is_engagement(c)] == [12]
