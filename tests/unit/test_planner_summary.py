"""The user summary: each figure derived from a small crafted snapshot."""

from __future__ import annotations

import math

import pytest

from memory_store.events import Interaction
from memory_store.operations import LifecycleParams, top_chunks
from memory_store.tiers import Operation, Polarity, PreferenceChunk, Profile, UserSnapshot
from memory_store.tiers import chunk_id_for as cid
from planner.summary import LastRun, OperationClock, op_facts, render_summary, summarize

DAY = 86_400.0
NOW = 1_000 * DAY
P = LifecycleParams(max_events_per_user=3, event_ttl=100 * DAY, min_events_per_user=0)


def chunk(
    key: str,
    strength: float,
    emb: tuple[float, ...],
    facet: str = "genre",
    polarity: Polarity = Polarity.LIKE,
    evidence_count: int = 1,
    last_seen: float = NOW,
    version: int = 1,
) -> PreferenceChunk:
    return PreferenceChunk(
        chunk_id=cid("acme", "u1", facet, key),
        tenant="acme",
        user_id="u1",
        facet=facet,
        key=key,
        topic=key,
        text=f"likes {key}",
        embedding=emb,
        polarity=polarity,
        strength=strength,
        evidence=(f"{key}-e",),
        evidence_ts=(last_seen,),
        evidence_count=evidence_count,
        first_seen=last_seen,
        last_seen=last_seen,
        version=version,
    )


def event(i: int, ts: float) -> Interaction:
    return Interaction.model_validate(
        {"event_id": f"e{i}", "tenant": "acme", "user_id": "u1", "item_id": "x", "type": "view",
         "ts": ts}
    )  # fmt: skip


SCIFI = chunk("scifi", 0.8, (1.0, 0.0, 0.0))
SCIENCE_FICTION = chunk("science fiction", 0.6, (0.99, 0.05, 0.0))  # near-duplicate of scifi
HORROR_DISLIKE = chunk("horror", 0.5, (0.99, 0.05, 0.0), polarity=Polarity.DISLIKE)
DECADE = chunk("1990s", 0.5, (1.0, 0.0, 0.0), facet="decade")  # same vector, other facet
CONTESTED = chunk("drama", 0.2, (0.0, 1.0, 0.0), evidence_count=9)
FADED = chunk("western", 0.5, (0.0, 0.0, 1.0), last_seen=NOW - 400 * DAY)


def snapshot(profile: Profile | None = None, events: int = 5) -> UserSnapshot:
    chunks = (SCIFI, SCIENCE_FICTION, HORROR_DISLIKE, DECADE, CONTESTED, FADED)
    evs = tuple(event(i, NOW - i * 60 * DAY) for i in range(events))
    return UserSnapshot("acme", "u1", chunks, profile, evs)


def test_figures_of_a_crafted_user() -> None:
    clock = OperationClock(
        events_total=40,
        runs={Operation.CONSOLIDATION: LastRun(NOW - 2 * DAY, 25)},
    )
    s = summarize(snapshot(), clock, NOW, P)
    assert s.key == ("acme", "u1")
    assert s.events_total == 40
    assert s.events_since[Operation.CONSOLIDATION] == 15
    assert s.events_since[Operation.EXTRACTION] == 40  # never ran: every event is new
    assert s.seconds_since[Operation.CONSOLIDATION] == pytest.approx(2 * DAY)
    assert s.seconds_since[Operation.FORGETTING] is None
    assert s.chunk_count == 6
    faded = 0.5 * 0.5 ** (400 / 90)
    assert s.strength_min == pytest.approx(faded)
    assert s.strength_max == pytest.approx(0.8)
    assert s.strength_mean == pytest.approx((0.8 + 0.6 + 0.5 + 0.5 + 0.2 + faded) / 6)
    assert s.strength_spread > 0
    assert s.forgettable_chunks == 1  # western decayed to ~0.023 < 0.05
    assert s.weak_chunks == 1  # below 2 x forget threshold
    assert s.contested_chunks == 1  # drama: 9 evidence, strength 0.2
    assert s.near_duplicate_pairs == 1  # only scifi ~ science fiction (same facet and polarity)
    assert s.event_count == 5 and s.event_cap == 3
    assert s.expired_events == 3  # 120, 180, 240 days old: past the TTL (two past the cap)
    assert s.idle_s == 0.0
    assert s.profile_age_s is None and s.profile_drift == 1.0


def test_next_forget_at_is_when_the_weakest_remaining_chunk_crosses_the_threshold() -> None:
    s = summarize(snapshot(), OperationClock(), NOW, P)
    # Drama (0.2, seen now) is the first not yet forgettable to fade below 0.05.
    assert s.next_forget_at == pytest.approx(NOW + P.half_life * math.log2(0.2 / 0.05))
    no_forgetting = LifecycleParams(forget_threshold=0.0)
    assert summarize(snapshot(), OperationClock(), NOW, no_forgetting).next_forget_at is None


def test_profile_drift_compares_sources_with_todays_top_chunks() -> None:
    top = top_chunks(snapshot(), NOW, P)
    sources = tuple((c.chunk_id, c.version) for c in top)

    def drift(srcs: tuple[tuple[str, int], ...]) -> float:
        profile = Profile("acme", "u1", "text", (), 1, srcs, built_at=NOW - DAY)
        return summarize(snapshot(profile), OperationClock(), NOW, P).profile_drift

    assert drift(sources) == 0.0
    # One source at an older version: 1 of 7 distinct (id, version) pairs differ on each side.
    bumped = ((sources[0][0], sources[0][1] + 1), *sources[1:])
    assert drift(bumped) == pytest.approx(1 - 5 / 7)
    assert drift((("gone", 1),)) == 1.0
    profile = Profile("acme", "u1", "text", (), 1, sources, built_at=NOW - DAY)
    assert summarize(snapshot(profile), OperationClock(), NOW, P).profile_age_s == DAY


def test_an_empty_user() -> None:
    s = summarize(UserSnapshot("acme", "u0"), OperationClock(), NOW, P)
    assert (s.chunk_count, s.strength_mean, s.near_duplicate_pairs, s.event_count) == (0, 0, 0, 0)
    assert s.idle_s is None and s.next_forget_at is None
    assert all(n == 0 for n in s.events_since.values())


def test_clock_updates_are_pure() -> None:
    clock = OperationClock()
    later = clock.observed(10).ran(Operation.FORGETTING, NOW).observed(4)
    assert clock.events_total == 0 and not clock.runs
    assert later.events_total == 14
    assert later.runs[Operation.FORGETTING] == LastRun(NOW, 10)
    s = summarize(snapshot(), later, NOW + DAY, P)
    assert s.events_since[Operation.FORGETTING] == 4
    assert s.seconds_since[Operation.FORGETTING] == DAY


def test_mismatched_embeddings_never_count_as_duplicates() -> None:
    a = chunk("a", 0.5, (1.0, 0.0))
    b = chunk("b", 0.5, (1.0, 0.0, 0.0))
    c = chunk("c", 0.5, (0.0, 0.0, 0.0))
    d = chunk("d", 0.5, (0.0, 0.0, 0.0))
    snap = UserSnapshot("acme", "u1", (a, b))
    assert summarize(snap, OperationClock(), NOW, P).near_duplicate_pairs == 0
    snap = UserSnapshot("acme", "u1", (c, d))
    assert summarize(snap, OperationClock(), NOW, P).near_duplicate_pairs == 0


def test_rendering_is_a_few_short_lines() -> None:
    s = summarize(snapshot(), OperationClock(40), NOW, P)
    text = render_summary(s, "user 1")
    lines = text.splitlines()
    assert len(lines) == 4 and lines[0].startswith("user 1:")
    assert all(len(line) < 160 for line in lines)
    assert "duplicate pairs 1" in text and "profile: none" in text
    assert render_summary(s).startswith("acme/u1:")
    assert op_facts(s, Operation.CONSOLIDATION) == "1 duplicate pairs"
    assert op_facts(s, Operation.FORGETTING) == "1 faded, 1 weak, 3 expired"
    assert op_facts(s, Operation.RESYNTHESIS) == "no profile"
    assert op_facts(s, Operation.WEAKENING) == "40 new events"
    empty = summarize(UserSnapshot("acme", "u0"), OperationClock(), NOW, P)
    assert op_facts(empty, Operation.EXTRACTION) == "no new events"
