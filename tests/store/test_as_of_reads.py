"""Point-in-time reads: the memory as it stood at an event time equals what a live read saw then.

Store tier (real LanceDB, the fake embedder). A stream with maintenance rounds on event time
(forgetting expires events and deletes chunks, resynthesis builds profiles) is written in
batches; after each batch every user's memory is read live. After the whole stream, reading
each user "as of" the event time of each of those moments gives the same chunks (strengths,
evidence, versions), the same profile and the same events.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from memory_store.lance.store import open_store
from memory_store.reader import MemoryReader
from memory_store.store import ALL_EVENTS, EventRecord, UserDelta, UserKey
from memory_store.tiers import Delta, UserSnapshot
from planner.policies import FixedIntervalPolicy, Policy, RulesPolicy
from streams.worker.scheduler import partition_for
from tests.store.test_event_rounds import _NO_SHRINK, PARTITIONS, Writer
from tests.store.test_keeper_stream import OLD
from tests.store.test_reader import NOW, chunk
from tests.store.test_tier_store import KINDS, event
from tests.unit.fake_embedding import fake_embed

# Bursts of five events in one second, seven minutes apart: the stream outlives the event TTL
# (two hours), so rounds expire events and forget chunks while it runs.
GAP_S = 420.0


def stream(raw: list[tuple[int, str, int]]) -> list[EventRecord]:
    offsets = [0] * PARTITIONS
    out = []
    for n, (user, kind, item) in enumerate(raw):
        ev = event(n, "acme", f"u{user}", kind, item, OLD + (n // 5) * GAP_S)
        p = partition_for(ev.user_id.encode(), PARTITIONS)
        out.append(EventRecord(ev, p, offsets[p]))
        offsets[p] += 1
    return out


Seen = tuple[list[tuple[str, int, float, int, tuple[str, ...]]], object, list[str]]


def seen(snapshot: UserSnapshot) -> Seen:
    """What a ranker reads: chunks (id, version, strength, count, evidence), profile, events."""
    chunks = sorted(
        (c.chunk_id, c.version, c.strength, c.evidence_count, c.evidence)
        for c in snapshot.chunks
    )  # fmt: skip
    return chunks, snapshot.profile, [e.event_id for e in snapshot.events]


@settings(max_examples=8, deadline=None, phases=_NO_SHRINK)
@given(
    st.lists(
        st.tuples(st.integers(0, 4), st.sampled_from(KINDS), st.integers(0, 5)),
        min_size=100,
        max_size=160,
    ),
    st.sampled_from(["fixed", "rules"]),
    st.data(),
)
def test_as_of_reads_equal_the_live_reads_of_their_moment(
    raw: list[tuple[int, str, int]], policy_name: str, data: st.DataObject
) -> None:
    records = stream(raw)
    # Cut between bursts (events of one burst share a second): a moment's time is then
    # the time of everything written so far, and of nothing written after.
    bursts = range(5, len(records), 5)
    cuts = sorted(data.draw(st.sets(st.sampled_from(bursts), min_size=1, max_size=8)))
    bounds = list(zip([0, *cuts], [*cuts, len(records)], strict=True))
    policy: Policy = FixedIntervalPolicy(0.0) if policy_name == "fixed" else RulesPolicy()

    with tempfile.TemporaryDirectory() as tmp:
        writer = Writer(Path(tmp), policy)
        store = writer.keeper.store
        moments: list[tuple[UserKey, float, Seen]] = []
        for a, b in bounds:
            writer.write(records[a:b])
            t = records[b - 1].event.ts
            live = store.read_snapshots(store.list_users("acme"), ALL_EVENTS)
            moments += [(key, t, seen(snap)) for key, snap in live.items()]

        past = store.read_snapshots_as_of([(k, t) for k, t, _ in moments], ALL_EVENTS)

        assert [seen(s) for s in past] == [then for _, _, then in moments]
        assert any(writer.ran)  # rounds ran between the moments
        assert store.count_events("acme") < len(records)  # and expired events
        assert any(then[1] is not None for _, _, then in moments)  # profiles were read


def test_as_of_before_the_first_write_is_empty_and_after_the_last_is_live(tmp_path: Path) -> None:
    store = open_store(str(tmp_path))
    liked = chunk("acme", "u1", "comedy", 0.6)
    store.write_deltas([UserDelta("acme", "u1", Delta(upserts=(liked,)), as_of=NOW)])
    stronger = chunk("acme", "u1", "comedy", 0.9)
    store.write_deltas([UserDelta("acme", "u1", Delta(upserts=(stronger,)), as_of=NOW + 60)])
    store.write_deltas([UserDelta("acme", "u1", Delta(deletes=(liked.chunk_id,)), as_of=NOW + 120)])

    before, first, second, gone = store.read_snapshots_as_of(
        [(("acme", "u1"), t) for t in (NOW - 1, NOW + 30, NOW + 60, NOW + 500)]
    )
    assert before.chunks == () and gone.chunks == ()
    assert [c.strength for c in first.chunks] == [0.6]
    assert [c.strength for c in second.chunks] == [0.9]
    live = store.read_snapshots([("acme", "u1")])[("acme", "u1")]
    assert gone.chunks == live.chunks


def test_as_of_reads_never_cross_tenants(tmp_path: Path) -> None:
    store = open_store(str(tmp_path))
    store.write_deltas(
        [
            UserDelta("acme", "u1", Delta(upserts=(chunk("acme", "u1", "comedy", 0.6),)), NOW),
            UserDelta("globex", "u1", Delta(upserts=(chunk("globex", "u1", "horror", 0.9),)), NOW),
        ]
    )
    (acme,) = store.read_snapshots_as_of([(("acme", "u1"), NOW)])
    (nobody,) = store.read_snapshots_as_of([(("initech", "u1"), NOW)])
    assert {c.tenant for c in acme.chunks} == {"acme"} and len(acme.chunks) == 1
    assert nobody.chunks == () and nobody.profile is None


def test_events_of_one_second_are_read_in_the_order_the_user_acted(tmp_path: Path) -> None:
    """Within one timestamp the stream's order is the user's order; ids say nothing about it
    (on MovieLens they hold the title), so every read orders ties by offset, not by id."""
    store = open_store(str(tmp_path))
    # Ids run z..a while the stream (offsets) runs a..z: the two orders disagree.
    ids = [f"e-{chr(ord('z') - n)}" for n in range(6)]
    records = [
        EventRecord(event(n, "acme", "u1", "view", n, OLD).model_copy(update={"event_id": eid}),
                    0, 10 + n)
        for n, eid in enumerate(ids)
    ]  # fmt: skip
    store.write_events(list(reversed(records)))  # the order of the write does not matter
    key: UserKey = ("acme", "u1")
    live = store.read_snapshots([key])[key]
    (as_of,) = store.read_snapshots_as_of([(key, OLD)])
    assert [e.event_id for e in live.events] == ids
    assert [e.event_id for e in as_of.events] == ids
    assert [r["event_id"] for r in store.read_user("acme", "u1").recent_events] == ids[::-1]
    (last_two,) = store.read_snapshots_as_of([(key, OLD)], event_limit=2)
    assert [e.event_id for e in last_two.events] == ids[-2:]
    view = MemoryReader(store, None, fake_embed, clock=lambda: OLD).get_user_memory("acme", "u1")
    assert [e.event_id for e in view.events] == ids[::-1]
