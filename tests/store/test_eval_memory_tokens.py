"""What the SASRec rankers read from a real store: memory tokens and event windows, as of a time."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np

from memory_store.lance.store import open_store
from memory_store.rating_norm import NORM_FACET
from memory_store.store import EventRecord, UserDelta
from memory_store.tiers import Delta, Polarity, Profile, chunk_id_for
from streams.eval.memory_read import (
    memory_after_replay,
    read_event_sequences,
    read_memory_tokens,
    read_tiered_memory,
)
from tests.store.test_reader import NOW, chunk, interaction
from tests.unit.fake_embedding import fake_embed

DIM = 8


def _store(tmp_path: Path) -> str:
    uri = str(tmp_path / "lance")
    store = open_store(uri)
    store.write_events([EventRecord(interaction(n, "acme", "u1", NOW + n)) for n in range(6)])
    store.write_events([EventRecord(interaction(9, "globex", "u1", NOW))])
    liked = chunk("acme", "u1", "comedy", 0.4, last_seen=NOW)
    disliked = chunk("acme", "u1", "horror", 0.8, last_seen=NOW, polarity=Polarity.DISLIKE)
    store.write_deltas([UserDelta("acme", "u1", Delta(upserts=(liked, disliked)), as_of=NOW)])
    profile = Profile("acme", "u1", "Likes comedy.", tuple(fake_embed(["Likes comedy."])[0]), 1,
                      ((liked.chunk_id, 1),), NOW + 100)  # fmt: skip
    store.write_deltas([UserDelta("acme", "u1", Delta(profile=profile), as_of=NOW + 100)])
    store.write_deltas(
        [UserDelta("globex", "u1", Delta(upserts=(chunk("globex", "u1", "western", 0.9),)), NOW)]
    )
    return uri


def test_tokens_are_the_strongest_chunks_signed_and_the_profile_as_of_each_time(
    tmp_path: Path,
) -> None:
    uri = _store(tmp_path)
    reads = [("u1", NOW - 1), ("u1", NOW + 50), ("u1", NOW + 200), ("u2", NOW + 200)]
    before, chunks_only, with_profile, stranger = read_memory_tokens(uri, "acme", reads, 16, DIM)
    assert before.keys == () and before.profile is None
    assert chunks_only.keys == ("genre:horror", "genre:comedy")  # strongest first
    assert chunks_only.strengths[0] < 0 < chunks_only.strengths[1]  # a dislike is negative
    assert abs(chunks_only.strengths[0]) <= 0.8 and chunks_only.profile is None
    assert with_profile.profile is not None
    assert np.isclose(np.linalg.norm(with_profile.profile), 1.0)
    assert stranger.keys == () and stranger.profile is None
    (one,) = read_memory_tokens(uri, "acme", [("u1", NOW + 50)], 1, DIM)
    assert one.keys == ("genre:horror",)


def test_tokens_never_cross_tenants(tmp_path: Path) -> None:
    uri = _store(tmp_path)
    (globex,) = read_memory_tokens(uri, "globex", [("u1", NOW + 50)], 16, DIM)
    assert globex.keys == ("genre:western",)


def test_event_sequences_are_the_newest_events_as_of_each_time_oldest_first(
    tmp_path: Path,
) -> None:
    uri = _store(tmp_path)
    read = read_event_sequences(uri, "acme", {"u1": NOW + 3.5, "u2": NOW + 3.5}, 3, DIM)
    assert read["u1"] == [("i1", NOW + 1), ("i2", NOW + 2), ("i3", NOW + 3)]
    assert read["u2"] == []
    assert read_event_sequences(uri, "globex", {"u1": NOW + 10}, 3, DIM)["u1"] == [("i9", NOW)]


def test_memory_after_replay_counts_what_each_user_holds_now(tmp_path: Path) -> None:
    uri = _store(tmp_path)
    store = open_store(uri)
    store.write_events([EventRecord(interaction(20, "acme", "u3", NOW))])
    counts = memory_after_replay(uri, "acme", ["u1", "u2", "u3"])
    assert counts == {"users": 3, "with_beliefs": 1, "with_profile": 1, "with_events": 2}


def test_the_scorer_reads_beliefs_without_the_rating_norm_and_reports_their_spread(
    tmp_path: Path,
) -> None:
    uri = _store(tmp_path)
    genre = chunk("acme", "u1", "mean", 1.0, last_seen=NOW)
    norm = replace(genre, facet=NORM_FACET, chunk_id=chunk_id_for("acme", "u1", NORM_FACET, "mean"))
    open_store(uri).write_deltas([UserDelta("acme", "u1", Delta(upserts=(norm,)), as_of=NOW)])
    memories, stats = read_tiered_memory(uri, "acme", ["u1"], fake_embed, DIM, {"u1": NOW + 50})
    assert memories["u1"].facets == ("genre", "genre")
    assert stats.chunks == 2 and stats.dislike_chunks == 1
    assert 0.4 <= stats.strength_median <= 0.6  # (0.4 + 0.8) / 2 at most, decayed a little
    assert stats.share_at_least_0_9 == 0.0 and stats.share_at_least_0_99 == 0.0
