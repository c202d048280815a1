"""A user's own rating scale: ratings read against it, kept as a chunk that never fades."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from memory_store.operations import absorb_stream, effective_strength, forgetting
from memory_store.operations.resynthesis import top_chunks
from memory_store.rating_norm import NORM_FACET, RatingNorm, is_norm, norm_chunk
from memory_store.tiers import Polarity, UserSnapshot, apply_delta
from tests.unit.fake_embedding import fake_embed
from tests.unit.test_fold_determinism import EMPTY, P, Run, beliefs, item, rating

YEAR = 365 * 86_400.0


def fold(values: list[float], genres: list[str]) -> UserSnapshot:
    """One rating per value, of item n's genres (genres[n]), one second apart."""
    catalogue = {f"i{n}": item(n, [g]) for n, g in enumerate(genres)}
    events = [rating(n, f"i{n}", v, 1_000.0 + n) for n, v in enumerate(values)]
    return apply_delta(EMPTY, absorb_stream(EMPTY, events, catalogue, P, fake_embed).delta)


def test_a_harsh_raters_three_stars_are_praise_and_a_new_users_are_not() -> None:
    harsh = fold([1.0] * 20 + [3.0], ["Drama"] * 20 + ["Comedy"])
    comedy = {c.key: c for c in beliefs(harsh)}["comedy"]
    assert comedy.polarity is Polarity.LIKE and comedy.strength > 0.2
    assert {c.key: c.polarity for c in beliefs(harsh)}["drama"] is Polarity.DISLIKE
    fresh = fold([3.0], ["Comedy"])
    assert beliefs(fresh) == []  # the scale's centre says nothing about a user we do not know


def test_a_generous_raters_three_stars_are_a_complaint() -> None:
    generous = fold([5.0] * 20 + [3.0], ["Drama"] * 20 + ["Comedy"])
    assert {c.key: c.polarity for c in beliefs(generous)}["comedy"] is Polarity.DISLIKE


def test_the_baseline_starts_at_the_centre_and_moves_to_the_users_mean() -> None:
    assert RatingNorm().baseline == 3.0
    one = RatingNorm().add(1.0, 0)
    assert one.baseline == pytest.approx((1.0 + 5 * 3.0) / 6)
    many = one
    for n in range(1, 500):
        many = many.add(1.0, n)
    assert many.baseline == pytest.approx(1.0, abs=0.02)
    assert many.add(5.0, 3) is many  # a position already counted changes nothing


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.sampled_from([0.5, 1.0, 2.0, 2.5, 3.0, 4.0, 4.5, 5.0, 7.0]), min_size=1,
             max_size=80),
    st.sets(st.integers(1, 79), max_size=6),
)  # fmt: skip
def test_the_norm_is_the_mean_of_the_users_ratings_whatever_the_batches(
    values: list[float], cuts: set[int]
) -> None:
    catalogue = {"i0": item(0, ["Drama"])}
    events = [rating(n, "i0", v, 1_000.0 + n) for n, v in enumerate(values)]
    positioned = list(enumerate(events))
    edges = sorted(c for c in cuts if c < len(values))
    run = Run(known=catalogue)
    for a, b in zip([0, *edges], [*edges, len(values)], strict=True):
        run.deliver(positioned[a:b])
        run.deliver(positioned[:b])  # a redelivery counts nothing twice
    norm = RatingNorm.of(run.snap)
    clamped = [min(5.0, max(1.0, v)) for v in values]
    assert norm.count == len(values)
    assert math.isclose(norm.mean, sum(clamped) / len(clamped), abs_tol=1e-9)
    whole = Run(known=catalogue)
    whole.deliver(positioned)
    assert norm_chunk(run.snap) == norm_chunk(whole.snap)  # exactly, not approximately


def test_the_norm_neither_decays_nor_is_forgotten_nor_narrated() -> None:
    harsh = fold([1.0] * 30, ["Drama"] * 30)
    norm = norm_chunk(harsh)
    assert norm is not None and norm.facet == NORM_FACET and is_norm(norm)
    assert norm.text.startswith("rates 1.00 of 5 on average (30 ratings)")
    later = norm.last_seen + 10 * YEAR
    assert effective_strength(norm, later, P) == norm.strength
    delta = forgetting(harsh, later, P)
    assert norm.chunk_id not in delta.deletes
    assert all(not is_norm(c) for c in top_chunks(harsh, later, P))
