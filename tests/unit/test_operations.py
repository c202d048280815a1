"""Worked examples of the six lifecycle operations on one small user."""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import pytest

from memory_store.events import Interaction, Item
from memory_store.operations import (
    NEUTRAL_NARRATIVE,
    LifecycleParams,
    consolidation,
    extraction,
    forgetting,
    reinforcement,
    resynthesis,
    template_narrative,
    weakening,
)
from memory_store.tiers import (
    MAX_EVIDENCE,
    Delta,
    Operation,
    Polarity,
    PreferenceChunk,
    UserSnapshot,
    apply_delta,
    chunk_id_for,
)
from tests.unit.fake_embedding import fake_embed

P = LifecycleParams()
DAY = 86_400.0


def movie(item_id: str, genres: list[str], year: int | None = None) -> Item:
    attrs: dict[str, Any] = {"genres": genres}
    if year is not None:
        attrs["year"] = year
    return Item(tenant="acme", item_id=item_id, title=item_id, attributes=attrs, ts=0)


ITEMS = {
    **{f"c{i}": movie(f"c{i}", ["Comedy"]) for i in range(10)},
    "h1": movie("h1", ["Horror"]),
    "d1": movie("d1", ["Drama"], 1994),
}


def ev(i: int, item_id: str, kind: str = "rate", value: float | None = 5.0) -> Interaction:
    return Interaction.model_validate(
        {
            "event_id": f"e{i}",
            "tenant": "acme",
            "user_id": "u1",
            "item_id": item_id,
            "type": kind,
            "value": value if kind == "rate" else None,
            "ts": 1_000.0 + i,
        }
    )


def at(events: Sequence[Interaction]) -> list[int]:
    """Stream positions of ``ev`` events: event ``e{i}`` is the user's i-th."""
    return [int(e.event_id[1:]) for e in events]


def learn(snap: UserSnapshot, events: Sequence[Interaction]) -> UserSnapshot:
    """Extraction, reinforcement and weakening, each applied before the next."""
    where = at(events)
    snap = apply_delta(snap, extraction(snap, events, ITEMS, P, fake_embed, positions=where))
    snap = apply_delta(snap, reinforcement(snap, events, ITEMS, P, positions=where))
    return apply_delta(snap, weakening(snap, events, ITEMS, P, positions=where))


def only(snap: UserSnapshot, key: str) -> PreferenceChunk:
    (found,) = [c for c in snap.chunks if c.key == key]
    return found


EMPTY = UserSnapshot("acme", "u1")
FIVE_COMEDIES = [ev(i, f"c{i}") for i in range(5)]


def test_extraction_creates_one_chunk_per_new_topic() -> None:
    delta = extraction(EMPTY, [*FIVE_COMEDIES, ev(9, "h1", value=1.0)], ITEMS, P, fake_embed)
    by_key = {c.key: c for c in delta.upserts}
    # A 1-star rating is a dislike and still a choice: horror has both.
    assert set(by_key) == {"comedy", "horror", "genre:comedy", "genre:horror"}
    assert by_key["genre:comedy"].text == "engages with Comedy"
    assert by_key["genre:comedy"].strength == pytest.approx(1 / 11)
    assert by_key["comedy"].polarity is Polarity.LIKE
    assert by_key["comedy"].strength == pytest.approx(0.5)
    assert by_key["comedy"].evidence == ("e0",)
    assert by_key["horror"].text == "dislikes Horror"
    assert [r.op for r in delta.changes] == [Operation.EXTRACTION] * 4
    assert extraction(apply_delta(EMPTY, delta), FIVE_COMEDIES, ITEMS, P, fake_embed).is_empty


def test_a_neutral_rating_teaches_only_that_the_user_chose_the_item() -> None:
    delta = extraction(EMPTY, [ev(1, "c1", value=3.0)], ITEMS, P, fake_embed)
    assert [(c.facet, c.key) for c in delta.upserts] == [("engagement", "genre:comedy")]


def test_extraction_embeds_in_one_call() -> None:
    calls: list[int] = []

    def counting(texts: Sequence[str]) -> list[list[float]]:
        calls.append(len(texts))
        return fake_embed(texts)

    extraction(EMPTY, [ev(1, "d1"), ev(2, "c1")], ITEMS, P, counting)
    assert calls == [3]  # drama, 1990s, comedy: their engagement chunks share the vectors


def test_five_comedies_make_a_strong_like() -> None:
    snap = learn(EMPTY, FIVE_COMEDIES)
    comedy = only(snap, "comedy")
    assert comedy.polarity is Polarity.LIKE
    assert comedy.strength > 0.8
    assert comedy.evidence_count == 5
    assert comedy.evidence == tuple(f"e{i}" for i in range(5))
    assert comedy.version == 5  # one version per counted event, however they are batched


def test_reinforcement_has_diminishing_returns_and_a_ceiling() -> None:
    snap = learn(EMPTY, [ev(0, "c0")])
    gains = []
    for i in range(1, 60):
        before = only(snap, "comedy").strength
        one = reinforcement(snap, [ev(i, f"c{i % 10}")], ITEMS, P, positions=[i])
        snap = apply_delta(snap, one)
        gains.append(only(snap, "comedy").strength - before)
    assert all(later <= earlier for earlier, later in itertools.pairwise(gains))
    assert 0.99 < only(snap, "comedy").strength <= 1.0
    assert only(snap, "comedy").evidence_count == 60


def test_replay_after_evidence_overflow_changes_nothing() -> None:
    events = [ev(i, f"c{i % 10}") for i in range(MAX_EVIDENCE + 20)]
    snap = learn(EMPTY, events)
    assert only(snap, "comedy").evidence_count == len(events)
    assert "e0" not in only(snap, "comedy").evidence
    assert learn(snap, events) == snap
    assert reinforcement(snap, events[:5], ITEMS, P, positions=at(events[:5])).is_empty


def test_dislikes_weaken_then_flip_a_like() -> None:
    snap = learn(EMPTY, FIVE_COMEDIES)
    liked = only(snap, "comedy").strength
    snap = learn(snap, [ev(10, "c5", "dislike")])
    assert only(snap, "comedy").polarity is Polarity.LIKE
    assert only(snap, "comedy").strength < liked
    two = [ev(11, "c6", "dislike"), ev(12, "c7", "dislike")]
    delta = weakening(snap, two, ITEMS, P, positions=at(two))
    (record,) = delta.changes
    assert "flipped like->dislike" in record.detail
    assert record.event_ids == ("e11", "e12")
    snap = apply_delta(snap, delta)
    comedy = only(snap, "comedy")
    assert comedy.polarity is Polarity.DISLIKE
    assert comedy.text == "dislikes Comedy"
    assert comedy.evidence_count == 8


def test_weak_contradiction_never_flips() -> None:
    snap = learn(EMPTY, [ev(0, "c0")])
    skips = [ev(i, f"c{i % 10}", "skip") for i in range(1, 40)]
    snap = learn(snap, skips)
    comedy = only(snap, "comedy")
    assert comedy.polarity is Polarity.LIKE
    assert 0.0 <= comedy.strength < P.flip_threshold


def test_consolidation_merges_near_duplicates_into_the_strongest() -> None:
    def chunk(key: str, strength: float, evidence: tuple[str, ...], ts: float) -> PreferenceChunk:
        return PreferenceChunk(
            chunk_id=chunk_id_for("acme", "u1", "genre", key),
            tenant="acme",
            user_id="u1",
            facet="genre",
            key=key,
            topic=key,
            text=f"likes {key}",
            embedding=(1.0, 0.01 * len(key)),
            polarity=Polarity.LIKE,
            strength=strength,
            evidence=evidence,
            evidence_ts=tuple(ts for _ in evidence),
            evidence_count=len(evidence) + 3,
            first_seen=ts,
            last_seen=ts,
        )

    strong = chunk("sci-fi", 0.6, ("a", "b"), 10.0)
    weak = chunk("science fiction", 0.5, ("c",), 10.0)
    other = replace(chunk("drama", 0.9, ("d",), 10.0), embedding=(0.0, 1.0))
    snap = UserSnapshot("acme", "u1", (strong, weak, other))
    delta = consolidation(snap, P)
    assert delta.deletes == (weak.chunk_id,)
    (merged,) = delta.upserts
    assert merged.chunk_id == strong.chunk_id
    assert merged.strength == pytest.approx(1 - 0.4 * 0.5)
    assert merged.evidence_count == strong.evidence_count + weak.evidence_count
    assert set(merged.evidence) == {"a", "b", "c"}
    assert merged.aliases == ("science fiction",)
    after = apply_delta(snap, delta)
    assert after.key_index()[("genre", "science fiction")] == strong.chunk_id
    assert consolidation(after, P).is_empty


def test_forgetting_drops_faded_chunks_and_expired_events() -> None:
    snap = learn(EMPTY, [ev(0, "c0"), ev(1, "d1")])
    events = (ev(0, "c0"), ev(1, "d1"), ev(2, "c1"))
    snap = UserSnapshot("acme", "u1", snap.chunks, events=events)
    assert forgetting(snap, 1_100.0, P).is_empty
    # Four half-lives on, 0.5 would decay to ~0.03 < 0.05; but the user was idle, and on their
    # own clock nothing faded: only the events outside retention go.
    late = 1_000.0 + 4 * P.half_life
    short_ttl = replace(P, event_ttl=P.half_life, min_events_per_user=0)
    # By default a user's newest 200 events stay whatever their age.
    assert forgetting(snap, late, P).forget_event_ids == ()
    idle = forgetting(snap, late, short_ttl)
    assert idle.deletes == () and idle.forget_event_ids == ("e0", "e1", "e2")
    # A user who kept interacting for those half-lives without confirming them forgets them.
    busy = UserSnapshot("acme", "u1", snap.chunks, events=(*events, ev(int(4 * P.half_life), "x")))
    assert set(forgetting(busy, late, short_ttl).deletes) == {c.chunk_id for c in snap.chunks}
    # On everybody's clock, idleness alone forgets them.
    delta = forgetting(snap, late, replace(short_ttl, decay_clock="global"))
    assert set(delta.deletes) == {c.chunk_id for c in snap.chunks}
    assert delta.forget_event_ids == ("e0", "e1", "e2")
    capped = forgetting(snap, 1_100.0, replace(P, max_events_per_user=1))
    assert capped.forget_event_ids == ("e0", "e1")
    assert capped.deletes == ()


def test_resynthesis_writes_a_versioned_profile() -> None:
    snap = learn(EMPTY, [*FIVE_COMEDIES, ev(20, "d1"), ev(21, "h1", "dislike")])
    delta = resynthesis(snap, 2_000.0, P, fake_embed)
    profile = delta.profile
    assert profile is not None
    assert profile.narrative == (
        "Mostly chooses Comedy, Drama and 1990s titles. "
        "Enjoys Comedy and Drama, especially 1990s titles. Tends to dislike Horror."
    )
    assert profile.version == 1 and profile.built_at == 2_000.0
    assert set(profile.sources) == {(c.chunk_id, c.version) for c in snap.chunks}
    assert len(profile.embedding) == 8
    again = resynthesis(apply_delta(snap, delta), 3_000.0, P, fake_embed)
    assert again.profile is not None and again.profile.version == 2


def test_resynthesis_uses_top_k_and_the_narrator() -> None:
    snap = learn(EMPTY, [*FIVE_COMEDIES, ev(20, "d1")])
    seen: list[int] = []

    def narrate(chunks: Sequence[PreferenceChunk]) -> str:
        seen.append(len(chunks))
        return "LLM says: " + chunks[0].text

    delta = resynthesis(snap, 2_000.0, replace(P, narrative_top_k=1), fake_embed, narrate)
    assert delta.profile is not None
    assert delta.profile.narrative == "LLM says: likes Comedy"
    assert seen == [1]


def test_no_chunks_gives_a_neutral_profile() -> None:
    delta = resynthesis(EMPTY, 0.0, P, fake_embed, narrate=lambda _: "never called")
    assert delta.profile is not None and delta.profile.narrative == NEUTRAL_NARRATIVE
    assert template_narrative([]) == NEUTRAL_NARRATIVE


def test_empty_inputs_give_empty_deltas() -> None:
    assert extraction(EMPTY, [], ITEMS, P, fake_embed) == Delta.empty()
    assert reinforcement(EMPTY, FIVE_COMEDIES, ITEMS, P).is_empty
    assert weakening(EMPTY, FIVE_COMEDIES, ITEMS, P).is_empty
    assert consolidation(EMPTY, P).is_empty
    assert forgetting(EMPTY, 0.0, P).is_empty


def test_embedder_returning_too_few_vectors_is_an_error() -> None:
    with pytest.raises(ValueError, match="vectors"):
        extraction(EMPTY, FIVE_COMEDIES, ITEMS, P, lambda texts: [])
