"""The ranker read API: ranking, retrieval, the versioned LRU cache and tenant isolation."""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any, cast

import pytest

from memory_store.change_notice import ChangeNotice
from memory_store.events import Interaction, Item
from memory_store.lance.catalogue import ItemCatalogue, open_catalogue
from memory_store.lance.store import open_store
from memory_store.operations import LifecycleParams
from memory_store.operations.forgetting import effective_strength
from memory_store.reader import MemoryReader, UnknownItemError
from memory_store.signals import statement
from memory_store.store import DEFAULT_EVENT_LIMIT, EventRecord, MemoryStore, UserDelta, UserKey
from memory_store.tiers import Delta, Polarity, PreferenceChunk, Profile, UserSnapshot, chunk_id_for
from tests.unit.fake_embedding import fake_embed

NOW = 1_700_000_000.0
DAY = 86_400.0
GENRES = ("comedy", "drama", "horror", "western")
Embed = Callable[[Sequence[str]], list[list[float]]]


def keyword_embed(texts: Sequence[str]) -> list[list[float]]:
    """One dimension per genre word (plus a bias), so items and topics share meaning."""
    out = []
    for text in texts:
        words = text.lower().replace(",", " ").replace(".", " ").split()
        out.append([*(float(g in words) for g in GENRES), 0.1])
    return out


def chunk(
    tenant: str,
    user: str,
    key: str,
    strength: float,
    last_seen: float = NOW,
    polarity: Polarity = Polarity.LIKE,
    embed: Embed = fake_embed,
) -> PreferenceChunk:
    topic = key.title()
    return PreferenceChunk(
        chunk_id=chunk_id_for(tenant, user, "genre", key),
        tenant=tenant,
        user_id=user,
        facet="genre",
        key=key,
        topic=topic,
        text=statement(polarity, topic),
        embedding=tuple(embed([topic])[0]),
        polarity=polarity,
        strength=strength,
        evidence=(f"ev-{key}",),
        evidence_ts=(last_seen,),
        evidence_count=1,
        first_seen=last_seen,
        last_seen=last_seen,
    )


def write(store: MemoryStore, tenant: str, user: str, *chunks: PreferenceChunk, **kw: Any) -> None:
    store.write_deltas([UserDelta(tenant, user, Delta(upserts=chunks, **kw))])


def interaction(n: int, tenant: str, user: str, ts: float) -> Interaction:
    return Interaction(
        event_id=f"e{n}", tenant=tenant, user_id=user, item_id=f"i{n}", type="like", ts=ts
    )


class CountingStore:
    """A store proxy counting snapshot reads, optionally running a hook in the middle of one."""

    def __init__(self, inner: MemoryStore) -> None:
        self.inner = inner
        self.reads = 0
        self.during_read: Callable[[], None] | None = None
        self.tamper: Callable[[UserSnapshot], UserSnapshot] | None = None

    def read_snapshots(
        self, keys: Sequence[UserKey], event_limit: int = DEFAULT_EVENT_LIMIT
    ) -> dict[UserKey, UserSnapshot]:
        self.reads += 1
        out = self.inner.read_snapshots(keys, event_limit)
        if self.during_read is not None:
            hook, self.during_read = self.during_read, None
            hook()
        if self.tamper is not None:
            out = {k: self.tamper(s) for k, s in out.items()}
        return out

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


@pytest.fixture
def store(tmp_path: Path) -> MemoryStore:
    return open_store(str(tmp_path))


@pytest.fixture
def counting(store: MemoryStore) -> CountingStore:
    return CountingStore(store)


def reader_over(store: Any, embed: Embed = fake_embed, **kw: Any) -> MemoryReader:
    catalogue = kw.pop("catalogue", None)
    return MemoryReader(cast(MemoryStore, store), catalogue, embed, clock=lambda: NOW, **kw)


def test_view_holds_profile_strongest_chunks_decayed_and_newest_events(store: MemoryStore) -> None:
    old = chunk("acme", "u1", "comedy", 0.8, last_seen=NOW - 180 * DAY)  # decays to 0.2
    fresh = chunk("acme", "u1", "drama", 0.5)
    weak = chunk("acme", "u1", "horror", 0.3, polarity=Polarity.DISLIKE)
    profile = Profile("acme", "u1", "Enjoys Drama.", (1.0,), 3, (("a", 1), ("b", 2)), NOW - 5)
    write(store, "acme", "u1", old, fresh, weak, profile=profile)
    store.write_events([EventRecord(interaction(n, "acme", "u1", NOW - 100 + n)) for n in range(5)])

    view = reader_over(store, event_limit=3).get_user_memory("acme", "u1", k=2)

    assert [c.text for c in view.chunks] == ["likes Drama", "dislikes Horror"]
    assert view.chunk_count == 3
    assert view.chunks[0].strength == pytest.approx(0.5)
    full = reader_over(store).get_user_memory("acme", "u1", k=10)
    decayed = effective_strength(old, NOW, LifecycleParams())
    assert full.chunks[-1].chunk_id == old.chunk_id
    assert full.chunks[-1].strength == pytest.approx(decayed) == pytest.approx(0.2)
    assert full.chunks[1].polarity == "dislike" and full.chunks[1].evidence_count == 1
    assert [e.event_id for e in view.events] == ["e4", "e3", "e2"]
    assert view.events[0].ts == NOW - 96 and view.events[0].type == "like"
    assert view.profile is not None
    assert (view.profile.narrative, view.profile.version, view.profile.sources) == (
        "Enjoys Drama.",
        3,
        2,
    )
    assert view.version == -1


def test_unknown_user_has_an_empty_view(store: MemoryStore) -> None:
    view = reader_over(store).get_user_memory("acme", "nobody")
    assert (view.profile, view.chunks, view.events, view.chunk_count) == (None, (), (), 0)
    assert reader_over(store).retrieve("acme", "nobody", query="Comedy") == []


def test_ties_are_broken_by_chunk_id(store: MemoryStore) -> None:
    chunks = [chunk("acme", "u1", g, 0.4) for g in GENRES]
    write(store, "acme", "u1", *chunks)
    view = reader_over(store).get_user_memory("acme", "u1", k=4)
    assert [c.chunk_id for c in view.chunks] == sorted(c.chunk_id for c in chunks)


def test_retrieve_by_text_and_by_vector_ranks_the_matching_chunk_first(
    store: MemoryStore,
) -> None:
    write(store, "acme", "u1", *(chunk("acme", "u1", g, 0.5) for g in GENRES))
    reader = reader_over(store)
    by_text = reader.retrieve("acme", "u1", query="Horror", k=2)
    assert len(by_text) == 2
    assert by_text[0].text == "likes Horror"
    assert by_text[0].similarity == pytest.approx(1.0, abs=1e-5)
    assert by_text[0].score == pytest.approx(0.5, abs=1e-5)
    assert by_text[0].score >= by_text[1].score
    by_vector = reader.retrieve("acme", "u1", query=[2 * x for x in fake_embed(["Western"])[0]])
    assert by_vector[0].text == "likes Western" and len(by_vector) == 4
    assert reader.retrieve("acme", "u1", query="Horror", k=0) == []


def test_score_weighs_similarity_by_decayed_strength(store: MemoryStore) -> None:
    write(
        store,
        "acme",
        "u1",
        chunk("acme", "u1", "comedy", 0.9, last_seen=NOW - 360 * DAY, embed=keyword_embed),
        chunk("acme", "u1", "drama", 0.5, embed=keyword_embed),
    )
    reader = reader_over(store, keyword_embed)
    ranked = reader.retrieve("acme", "u1", query="comedy drama")
    assert [c.text for c in ranked] == ["likes Drama", "likes Comedy"]
    assert ranked[1].strength == pytest.approx(0.9 / 16)
    assert ranked[1].score == pytest.approx(ranked[1].similarity * ranked[1].strength)


def catalogue_with(tmp_path: Path, tenant: str, genres: dict[str, str]) -> ItemCatalogue:
    catalogue = open_catalogue(str(tmp_path / "catalogue"))
    catalogue.write_items(
        [
            Item(tenant=tenant, item_id=i, title=f"Film {i}", attributes={"genres": g}, ts=0)
            for i, g in genres.items()
        ]
    )
    return catalogue


def test_retrieve_by_item_ids_uses_the_mean_item_embedding(
    store: MemoryStore, tmp_path: Path
) -> None:
    write(store, "acme", "u1", *(chunk("acme", "u1", g, 0.5, embed=keyword_embed) for g in GENRES))
    catalogue = catalogue_with(tmp_path, "acme", {"a": "Western|Drama", "b": "Western"})
    reader = reader_over(store, keyword_embed, catalogue=catalogue)
    ranked = reader.retrieve("acme", "u1", item_ids=["a", "b"], k=2)
    assert [c.text for c in ranked] == ["likes Western", "likes Drama"]


def test_unknown_items_raise_a_clear_value_error(store: MemoryStore, tmp_path: Path) -> None:
    catalogue = catalogue_with(tmp_path, "acme", {"a": "Western"})
    catalogue.write_items([Item(tenant="other", item_id="x", title="X", ts=0)])
    reader = reader_over(store, catalogue=catalogue)
    with pytest.raises(UnknownItemError, match=r"'nope'.*'x'") as err:
        reader.retrieve("acme", "u1", item_ids=["a", "nope", "x"])
    assert isinstance(err.value, ValueError) and err.value.item_ids == ("nope", "x")
    with pytest.raises(ValueError, match="needs an item catalogue"):
        reader_over(store).retrieve("acme", "u1", item_ids=["a"])


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"query": [0.1, 0.2, 0.3]}, "has 3 dimensions; the embedding dimension is 8"),
        ({"query": [[0.1] * 8]}, "flat list of numbers"),
        ({"query": [float("nan")] * 8}, "finite and non-zero"),
        ({"query": "  "}, "must not be empty"),
        ({}, "exactly one of"),
        ({"query": "Comedy", "item_ids": ["a"]}, "exactly one of"),
        ({"item_ids": []}, "non-empty"),
        ({"query": "Comedy", "k": -1}, "non-negative"),
    ],
)
def test_bad_queries_raise_value_error(
    store: MemoryStore, kwargs: dict[str, Any], message: str
) -> None:
    write(store, "acme", "u1", chunk("acme", "u1", "comedy", 0.5))
    with pytest.raises(ValueError, match=message):
        reader_over(store).retrieve("acme", "u1", **kwargs)


def test_a_zero_query_vector_matches_nothing_and_a_huge_one_still_has_a_direction(
    store: MemoryStore,
) -> None:
    write(store, "acme", "u1", chunk("acme", "u1", "comedy", 0.5))
    reader = reader_over(store)
    assert reader.retrieve("acme", "u1", query=[0.0] * 8) == []
    huge = reader.retrieve("acme", "u1", query=[1e200] * 8)  # its square would overflow
    assert [c.key for c in huge] == [chunk("acme", "u1", "comedy", 0.5).key]


def test_second_read_is_served_from_cache_and_queries_are_embedded_once(
    store: MemoryStore, counting: CountingStore
) -> None:
    write(store, "acme", "u1", chunk("acme", "u1", "comedy", 0.5))
    embedded: list[str] = []

    def embed(texts: Sequence[str]) -> list[list[float]]:
        embedded.extend(texts)
        return fake_embed(texts)

    reader = reader_over(counting, embed, dimension=8)
    first = reader.get_user_memory("acme", "u1")
    assert reader.get_user_memory("acme", "u1") == first
    assert reader.retrieve("acme", "u1", query="Comedy")[0].text == "likes Comedy"
    assert reader.retrieve("acme", "u1", query="Comedy")[0].text == "likes Comedy"
    assert counting.reads == 1
    assert embedded == ["Comedy"]
    stats = reader.stats()
    assert (stats.hits, stats.misses, stats.size) == (3, 1, 1)
    assert (stats.query_hits, stats.query_misses) == (1, 1)


def test_a_higher_notice_shows_new_memory_and_a_lower_or_equal_one_does_not_evict(
    store: MemoryStore, counting: CountingStore
) -> None:
    write(store, "acme", "u1", chunk("acme", "u1", "comedy", 0.5))
    reader = reader_over(counting)
    reader.invalidate(ChangeNotice("acme", "u1", 10))
    assert reader.get_user_memory("acme", "u1").version == 10
    write(store, "acme", "u1", chunk("acme", "u1", "drama", 0.6))
    for stale in (3, 10):
        reader.invalidate(ChangeNotice("acme", "u1", stale))
        assert reader.get_user_memory("acme", "u1").chunk_count == 1
    assert counting.reads == 1 and reader.stats().invalidations == 0
    reader.invalidate(ChangeNotice("acme", "u2", 99))  # another user
    reader.invalidate(ChangeNotice("other", "u1", 99))  # same user id, another tenant
    assert reader.get_user_memory("acme", "u1").chunk_count == 1 and counting.reads == 1

    reader.invalidate(ChangeNotice("acme", "u1", 11))
    view = reader.get_user_memory("acme", "u1")
    assert (view.version, view.chunk_count, view.chunks[0].text) == (11, 2, "likes Drama")
    assert counting.reads == 2 and reader.stats().invalidations == 1


def test_a_notice_arriving_during_a_load_still_invalidates(
    store: MemoryStore, counting: CountingStore
) -> None:
    write(store, "acme", "u1", chunk("acme", "u1", "comedy", 0.5))
    reader = reader_over(counting)

    def writer_commits_meanwhile() -> None:
        write(store, "acme", "u1", chunk("acme", "u1", "drama", 0.6))
        reader.invalidate(ChangeNotice("acme", "u1", 5))  # the lock is free during the read

    counting.during_read = writer_commits_meanwhile
    stale = reader.get_user_memory("acme", "u1")
    assert (stale.version, stale.chunk_count) == (-1, 1)
    fresh = reader.get_user_memory("acme", "u1")
    assert (fresh.version, fresh.chunk_count) == (5, 2)
    assert reader.get_user_memory("acme", "u1") == fresh and counting.reads == 2


def test_the_cache_keeps_the_least_recently_used_users_out(
    store: MemoryStore, counting: CountingStore
) -> None:
    reader = reader_over(counting, cache_users=2)
    for user in ("u1", "u2", "u1", "u3"):  # u2 is the least recently used when u3 comes
        reader.get_user_memory("acme", user)
    assert reader.stats().size == 2 and counting.reads == 3
    reader.get_user_memory("acme", "u1")
    reader.get_user_memory("acme", "u3")
    assert counting.reads == 3
    reader.get_user_memory("acme", "u2")
    assert counting.reads == 4 and reader.stats().size == 2
    reader.clear()
    assert reader.stats().size == 0

    uncached = reader_over(counting, cache_users=0)
    uncached.get_user_memory("acme", "u1")
    uncached.get_user_memory("acme", "u1")
    assert counting.reads == 6 and uncached.stats().size == 0


def test_the_same_user_id_in_two_tenants_never_mixes(store: MemoryStore) -> None:
    write(store, "acme", "u1", chunk("acme", "u1", "comedy", 0.5))
    write(store, "globex", "u1", chunk("globex", "u1", "horror", 0.7))
    store.write_events([EventRecord(interaction(1, "acme", "u1", NOW))])
    store.write_events([EventRecord(interaction(1, "globex", "u1", NOW - 1))])
    reader = reader_over(store)
    acme = reader.get_user_memory("acme", "u1")
    globex = reader.get_user_memory("globex", "u1")
    assert [c.text for c in acme.chunks] == ["likes Comedy"]
    assert [c.text for c in globex.chunks] == ["likes Horror"]
    assert [e.ts for e in acme.events] == [NOW] and [e.ts for e in globex.events] == [NOW - 1]
    assert [c.text for c in reader.retrieve("globex", "u1", query="Comedy")] == ["likes Horror"]


def test_a_bulk_read_equals_single_reads_in_one_store_read_for_the_uncached(
    store: MemoryStore, counting: CountingStore
) -> None:
    for n, user in enumerate(("u1", "u2", "u3")):
        write(store, "acme", user, chunk("acme", user, "comedy", 0.2 + 0.2 * n))
        store.write_events([EventRecord(interaction(n, "acme", user, NOW - n))])
    write(store, "globex", "u4", chunk("globex", "u4", "horror", 0.7))
    single = reader_over(store, cache_users=10)
    expected = {u: single.get_user_memory("acme", u) for u in ("u1", "u2", "u3", "u4")}
    reader = reader_over(counting, cache_users=10)
    assert reader.get_user_memory("acme", "u2") == expected["u2"]
    assert counting.reads == 1
    # u2 comes from the cache; u1, u3 and u4 (not acme's: an empty view) in one more read.
    bulk = reader.get_user_memories("acme", ["u1", "u2", "u3", "u4", "u1"])
    assert counting.reads == 2
    assert bulk == expected and not bulk["u4"].chunks
    assert reader.get_user_memories("acme", ["u3", "u1"]) == {u: expected[u] for u in ("u3", "u1")}
    assert counting.reads == 2
    stats = reader.stats()
    assert (stats.hits, stats.misses) == (3, 4)


def test_a_store_returning_another_users_memory_is_refused(
    store: MemoryStore, counting: CountingStore
) -> None:
    write(store, "globex", "u1", chunk("globex", "u1", "horror", 0.7))
    foreign = store.read_snapshots([("globex", "u1")])[("globex", "u1")]
    counting.tamper = lambda snap: foreign
    reader = reader_over(counting)
    with pytest.raises(RuntimeError, match="another tenant or user"):
        reader.get_user_memory("acme", "u1")
    assert reader.stats().size == 0


def test_concurrent_reads_and_notices_stay_consistent(store: MemoryStore) -> None:
    write(store, "acme", "u1", chunk("acme", "u1", "comedy", 0.5))
    reader = reader_over(store, cache_users=3)
    errors: list[BaseException] = []

    def read(user: str) -> None:
        try:
            for n in range(30):
                reader.get_user_memory("acme", user)
                reader.invalidate(ChangeNotice("acme", user, n))
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=read, args=(f"u{i % 4}",)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and reader.stats().size <= 3
    assert reader.get_user_memory("acme", "u1").chunk_count == 1


def test_bumped_chunk_versions_are_seen_after_a_notice(store: MemoryStore) -> None:
    original = chunk("acme", "u1", "comedy", 0.5)
    write(store, "acme", "u1", original)
    reader = reader_over(store)
    assert reader.get_user_memory("acme", "u1").chunks[0].strength == pytest.approx(0.5)
    write(store, "acme", "u1", replace(original, strength=0.9, version=2))
    assert reader.get_user_memory("acme", "u1").chunks[0].strength == pytest.approx(0.5)
    reader.invalidate(ChangeNotice("acme", "u1", 1))
    assert reader.get_user_memory("acme", "u1").chunks[0].strength == pytest.approx(0.9)


def test_event_time_decay_ages_a_replayed_history_from_its_own_newest_event(
    store: MemoryStore,
) -> None:
    then = 880_000_000.0  # 1997: every strength is ~0 by the wall clock
    old = chunk("acme", "u1", "comedy", 0.8, last_seen=then - 180 * DAY)
    fresh = chunk("acme", "u1", "drama", 0.5, last_seen=then)
    write(store, "acme", "u1", old, fresh)
    everybody = LifecycleParams(decay_clock="global")
    by_clock = reader_over(store, params=everybody).get_user_memory("acme", "u1").chunks
    assert max(c.strength for c in by_clock) < 1e-9
    reader = reader_over(store, decay_in_event_time=True, params=everybody)
    by_event = {c.text: c.strength for c in reader.get_user_memory("acme", "u1").chunks}
    assert by_event == {"likes Drama": pytest.approx(0.5), "likes Comedy": pytest.approx(0.2)}
    # The default, the user's own clock, ages them from the user's newest activity too.
    by_user = {c.text: c.strength for c in reader_over(store).get_user_memory("acme", "u1").chunks}
    assert by_user == by_event
