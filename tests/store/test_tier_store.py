"""LanceDB belief tiers: snapshots round-trip, deltas are idempotent and stay with their user."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import lancedb
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from memory_store.events import Interaction, Item
from memory_store.lance.store import open_store
from memory_store.lance.tier_rows import change_id, chunk_from_row, chunk_schema, chunks_to_table
from memory_store.operations import (
    LifecycleParams,
    consolidation,
    extraction,
    forgetting,
    reinforcement,
    resynthesis,
    weakening,
)
from memory_store.store import DEFAULT_EVENT_LIMIT, EventRecord, MemoryStore, UserDelta
from memory_store.tiers import Delta, UserSnapshot, apply_delta
from tests.unit.fake_embedding import fake_embed

P = LifecycleParams()
# Everybody's clock and no floor of kept events: idleness alone forgets chunks and expires
# events, so these storage tests see deletes round-trip.
GLOBAL = replace(P, decay_clock="global", min_events_per_user=0)
T0 = 1_700_000_000.0
DAY = 86_400.0
GENRES = ["Comedy", "Drama", "Horror", "Sci-Fi"]
KINDS = ["view", "click", "like", "dislike", "rate", "purchase", "skip", "play", "complete"]


def catalogue(tenant: str) -> dict[str, Item]:
    return {
        f"i{i}": Item(
            tenant=tenant,
            item_id=f"i{i}",
            title=f"film {i}",
            attributes={"genres": [GENRES[i % 4], GENRES[(i + 1) % 4]]},
            ts=0,
        )
        for i in range(6)
    }


def event(n: int, tenant: str, user: str, kind: str, item: int, ts: float) -> Interaction:
    return Interaction.model_validate(
        {
            "event_id": f"e{n}",
            "tenant": tenant,
            "user_id": user,
            "item_id": f"i{item}",
            "type": kind,
            "value": 4.0 if kind == "rate" else None,
            "ts": ts,
            "text": "loved it" if n % 3 == 0 else None,
            "context": {"device": "tv", "n": n} if n % 2 == 0 else None,
        }
    )


def some_events(tenant: str, user: str, start: int, n: int, t: float) -> list[Interaction]:
    return [
        event(start + i, tenant, user, KINDS[(start + i) % len(KINDS)], (start + i) % 6, t + i)
        for i in range(n)
    ]


def lifecycle(
    snap: UserSnapshot, events: list[Interaction], items: dict[str, Item], now: float
) -> list[Delta]:
    """Every operation once, each seeing the snapshot the previous ones produced."""
    steps = [
        lambda s: extraction(s, events, items, P, fake_embed, plan_id="p1"),
        lambda s: reinforcement(s, events, items, P),
        lambda s: weakening(s, events, items, P),
        lambda s: consolidation(s, replace(P, similarity_threshold=0.3)),
        lambda s: resynthesis(s, now, P, fake_embed, plan_id="p2"),
        lambda s: forgetting(s, now, GLOBAL),
    ]
    deltas = []
    for step in steps:
        delta = step(snap)
        deltas.append(delta)
        snap = apply_delta(snap, delta)
    return deltas


def read_one(
    store: MemoryStore, tenant: str, user_id: str, event_limit: int = DEFAULT_EVENT_LIMIT
) -> UserSnapshot:
    return store.read_snapshots([(tenant, user_id)], event_limit)[(tenant, user_id)]


def write_one(
    store: MemoryStore, tenant: str, user_id: str, delta: Delta, plan_id: str | None = None
) -> None:
    store.write_deltas([UserDelta(tenant, user_id, delta)], plan_id)


def stored_changes(path: Path) -> list[dict[str, Any]]:
    db = lancedb.connect(str(path))
    if "changes" not in db.list_tables().tables:
        return []
    rows: list[dict[str, Any]] = db.open_table("changes").to_arrow().to_pylist()
    return sorted(rows, key=lambda r: str(r["change_id"]))


def state(store: MemoryStore, path: Path, users: Sequence[tuple[str, str]]) -> Any:
    return [read_one(store, *u) for u in users], stored_changes(path)


def ingest(store: MemoryStore, events: Sequence[Interaction]) -> None:
    store.write_events([EventRecord(e) for e in events])


def test_snapshot_round_trips_the_whole_lifecycle(tmp_path: Path) -> None:
    store = open_store(str(tmp_path))
    items = catalogue("acme")
    events = some_events("acme", "u1", 0, 20, T0)
    ingest(store, events)
    snap = read_one(store, "acme", "u1")
    assert snap.events == tuple(events)
    for now in (T0 + DAY, T0 + 30 * DAY, T0 + 800 * DAY):
        for delta in lifecycle(snap, list(snap.events), items, now):
            expected = apply_delta(snap, delta)
            write_one(store, "acme", "u1", delta)
            snap = read_one(store, "acme", "u1")
            assert snap == expected
        more = some_events("acme", "u1", 20, 15, now)
        ingest(store, more)
        snap = read_one(store, "acme", "u1")
    assert snap.profile is not None and not snap.chunks and len(snap.events) == 15
    store.compact()
    assert read_one(store, "acme", "u1") == snap
    assert [e.event_id for e in read_one(store, "acme", "u1", event_limit=3).events] == [
        e.event_id for e in snap.events[-3:]
    ]


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(stored=st.integers(0, 12), limit=st.integers(1, 12))
def test_a_snapshot_holds_the_newest_min_limit_stored_events(
    tmp_path: Path, stored: int, limit: int
) -> None:
    # A user with fewer events than the limit once got only the last (2n - limit) of them.
    store = open_store(str(tmp_path / f"s{stored}-{limit}"))
    events = some_events("acme", "u1", 0, stored, T0)
    if events:
        ingest(store, events)
    got = [e.event_id for e in read_one(store, "acme", "u1", event_limit=limit).events]
    assert got == [e.event_id for e in events][max(0, stored - limit) :]


def test_applying_a_delta_twice_equals_once_and_logs_each_change_once(tmp_path: Path) -> None:
    store = open_store(str(tmp_path))
    items = catalogue("acme")
    ingest(store, some_events("acme", "u1", 0, 25, T0))
    snap = read_one(store, "acme", "u1")
    written: set[str] = set()
    for delta in lifecycle(snap, list(snap.events), items, T0 + DAY):
        write_one(store, "acme", "u1", delta, plan_id="plan-7")
        once = state(store, tmp_path, [("acme", "u1")])
        write_one(store, "acme", "u1", delta, plan_id="plan-7")
        assert state(store, tmp_path, [("acme", "u1")]) == once
        written |= {change_id(r, r.plan_id or "plan-7") for r in delta.changes}
    rows = stored_changes(tmp_path)
    assert [r["change_id"] for r in rows] == sorted(written)
    assert {r["plan_id"] for r in rows} == {"p1", "p2", "plan-7"}


def test_an_older_chunk_version_never_overwrites_a_newer_one(tmp_path: Path) -> None:
    store = open_store(str(tmp_path))
    items = catalogue("acme")
    ingest(store, some_events("acme", "u1", 0, 10, T0))
    snap = read_one(store, "acme", "u1")
    created = extraction(snap, snap.events, items, P, fake_embed)
    write_one(store, "acme", "u1", created)
    chunk = created.upserts[0]
    newer = replace(chunk, version=3, strength=0.9)
    write_one(store, "acme", "u1", Delta(upserts=(newer,)))
    write_one(store, "acme", "u1", Delta(upserts=(replace(chunk, version=2, strength=0.1),)))
    write_one(store, "acme", "u1", created)
    stored = read_one(store, "acme", "u1").chunk_index()[chunk.chunk_id]
    assert stored == newer


def test_deletes_and_forgotten_events_take_effect(tmp_path: Path) -> None:
    store = open_store(str(tmp_path))
    items = catalogue("acme")
    ingest(store, some_events("acme", "u1", 0, 12, T0))
    snap = read_one(store, "acme", "u1")
    write_one(store, "acme", "u1", extraction(snap, snap.events, items, P, fake_embed))
    snap = read_one(store, "acme", "u1")
    assert snap.chunks
    gone = forgetting(snap, T0 + 800 * DAY, GLOBAL)
    assert set(gone.deletes) == {c.chunk_id for c in snap.chunks}
    assert len(gone.forget_event_ids) == 12
    write_one(store, "acme", "u1", gone)
    after = read_one(store, "acme", "u1")
    assert after == UserSnapshot("acme", "u1")
    assert store.count_events("acme") == 0


def test_tenants_and_users_never_see_each_others_rows(tmp_path: Path) -> None:
    store = open_store(str(tmp_path))
    owners = [("acme", "u1"), ("globex", "u1"), ("acme", "u2")]
    first = {owner: 0 for owner in owners} | {("acme", "u2"): 100}  # ids are per tenant
    for tenant, user in owners:  # same item ids everywhere, same event ids across tenants
        ingest(store, some_events(tenant, user, first[(tenant, user)], 12, T0))
    acme = read_one(store, "acme", "u1")
    acme_deltas = lifecycle(acme, list(acme.events), catalogue("acme"), T0 + DAY)
    for delta in acme_deltas:
        write_one(store, "acme", "u1", delta)
    acme = read_one(store, "acme", "u1")
    assert acme.chunks and acme.profile is not None
    for tenant, user in owners[1:]:
        assert read_one(store, tenant, user) == UserSnapshot(
            tenant, user, events=tuple(some_events(tenant, user, first[(tenant, user)], 12, T0))
        )
    before = state(store, tmp_path, owners)
    with pytest.raises(ValueError, match="another tenant or user"):
        write_one(store, "globex", "u1", acme_deltas[0])
    with pytest.raises(ValueError, match="another tenant or user"):
        write_one(store, "acme", "u2", acme_deltas[4])
    assert state(store, tmp_path, owners) == before
    # A forget aimed at globex with acme's event ids removes only globex's events.
    write_one(store, "globex", "u1", Delta(forget_event_ids=("e0", "e1")))
    assert len(read_one(store, "globex", "u1").events) == 10
    assert read_one(store, "acme", "u1") == acme


def test_unknown_user_has_an_empty_snapshot(tmp_path: Path) -> None:
    store = open_store(str(tmp_path))
    assert read_one(store, "acme", "nobody") == UserSnapshot("acme", "nobody")
    ingest(store, some_events("acme", "u1", 0, 5, T0))
    snap = read_one(store, "acme", "u1")
    write_one(store, "acme", "u1", extraction(snap, snap.events, catalogue("acme"), P, fake_embed))
    store.compact()
    assert read_one(store, "acme", "nobody") == UserSnapshot("acme", "nobody")
    assert read_one(store, "acme' OR '1'='1", "u1") == UserSnapshot("acme' OR '1'='1", "u1")


def test_a_chunk_of_another_dimension_is_refused(tmp_path: Path) -> None:
    store = open_store(str(tmp_path))
    ingest(store, some_events("acme", "u1", 0, 5, T0))
    snap = read_one(store, "acme", "u1")
    delta = extraction(snap, snap.events, catalogue("acme"), P, fake_embed)
    write_one(store, "acme", "u1", delta)
    odd = replace(delta.upserts[0], embedding=(1.0, 0.0), version=9)
    with pytest.raises(ValueError, match="dimension"):
        write_one(store, "acme", "u1", Delta(upserts=(odd,)))


def test_chunk_rows_round_trip_without_lancedb() -> None:
    snap = UserSnapshot("acme", "u1")
    events = some_events("acme", "u1", 0, 12, T0)
    chunks = extraction(snap, events, catalogue("acme"), P, fake_embed).upserts
    for dimension in (8, None):
        table = chunks_to_table(chunks, chunk_schema(dimension))
        assert tuple(chunk_from_row(r) for r in table.to_pylist()) == chunks


@st.composite
def event_lists(draw: st.DrawFn) -> list[Interaction]:
    n = draw(st.integers(1, 25))
    return [
        event(
            i,
            "acme",
            "u1",
            draw(st.sampled_from(KINDS)),
            draw(st.integers(0, 5)),
            T0 + draw(st.integers(0, 30)) * DAY,
        )
        for i in range(n)
    ]


@settings(
    max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(event_lists(), st.integers(31, 500))
def test_any_lifecycle_delta_applied_twice_equals_once(
    tmp_path: Path, events: list[Interaction], days: int
) -> None:
    path = tmp_path / hashlib.sha1(repr((events, days)).encode()).hexdigest()
    store = open_store(str(path))
    ingest(store, events)
    snap = read_one(store, "acme", "u1")
    for delta in lifecycle(snap, events, catalogue("acme"), T0 + days * DAY):
        expected = apply_delta(snap, delta)
        write_one(store, "acme", "u1", delta)
        once = state(store, path, [("acme", "u1")])
        write_one(store, "acme", "u1", delta)
        assert state(store, path, [("acme", "u1")]) == once
        snap = read_one(store, "acme", "u1")
        assert snap == expected


def test_bulk_reads_and_writes_equal_one_user_at_a_time(tmp_path: Path) -> None:
    bulk, single = open_store(str(tmp_path / "bulk")), open_store(str(tmp_path / "single"))
    owners = [("acme", f"u{i}") for i in range(6)] + [("globex", "u1"), ("it's", "o'hara")]
    items = {t: catalogue(t) for t in {"acme", "globex", "it's"}}
    for store in (bulk, single):
        for n, (tenant, user) in enumerate(owners):
            ingest(store, some_events(tenant, user, 100 * n, 8 + n, T0))
    snaps = bulk.read_snapshots(owners)
    assert list(snaps) == owners
    assert snaps == {o: read_one(single, *o) for o in owners}
    for now in (T0 + DAY, T0 + 30 * DAY):
        per_user = {o: lifecycle(snaps[o], list(snaps[o].events), items[o[0]], now) for o in owners}
        for step in range(len(per_user[owners[0]])):
            bulk.write_deltas([UserDelta(t, u, per_user[(t, u)][step]) for t, u in owners])
            for t, u in owners:
                write_one(single, t, u, per_user[(t, u)][step])
        snaps = bulk.read_snapshots(owners)
        assert snaps == single.read_snapshots(owners)
    assert all(s.chunks and s.profile for s in snaps.values())


def test_a_bulk_write_with_one_foreign_delta_writes_nothing(tmp_path: Path) -> None:
    store = open_store(str(tmp_path))
    owners = [("acme", "u1"), ("acme", "u2")]
    for n, (tenant, user) in enumerate(owners):
        ingest(store, some_events(tenant, user, 100 * n, 10, T0))
    snaps = store.read_snapshots(owners)
    deltas = {
        o: extraction(snaps[o], snaps[o].events, catalogue("acme"), P, fake_embed) for o in owners
    }
    with pytest.raises(ValueError, match="another tenant or user"):
        store.write_deltas(
            [
                UserDelta("acme", "u1", deltas[("acme", "u1")]),
                UserDelta("acme", "u1", deltas[("acme", "u2")]),
            ]
        )
    assert store.read_snapshots(owners) == snaps
