"""The lifecycle passes (absorb, maintain) and the keeper that runs them on real LanceDB."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from memory_store.events import Interaction, Item
from memory_store.keeper import CachedEmbedder, MaintainResult, MemoryKeeper
from memory_store.lance.catalogue import open_catalogue
from memory_store.lance.store import open_store
from memory_store.lifecycle import (
    MAINTENANCE_ORDER,
    PlannedStep,
    absorb,
    profile_is_stale,
    run_planned,
)
from memory_store.operations import extraction, norm_update, reinforcement, weakening
from memory_store.rating_norm import NORM_FACET
from memory_store.store import EventRecord
from memory_store.tiers import Delta, Operation, UserSnapshot, apply_delta
from tests.store.test_tier_store import DAY, KINDS, T0, P, catalogue, event, some_events
from tests.unit.fake_embedding import fake_embed

OLD = 880_000_000.0  # 1997: MovieLens time, decades before the wall clock


def keeper(path: Path, clock: float = 2e9) -> MemoryKeeper:
    return MemoryKeeper(
        open_store(str(path)), open_catalogue(str(path)), CachedEmbedder(fake_embed),
        clock=lambda: clock,
    )  # fmt: skip


EVERYTHING = [PlannedStep(op, P) for op in MAINTENANCE_ORDER]


def maintain_all(k: MemoryKeeper) -> MaintainResult:
    """What a fixed-policy round does: fold late items on, then every operation for every
    user touched since the last round."""
    k.resolve_late_items()
    steps = [PlannedStep(op, k.params) for op in MAINTENANCE_ORDER]
    return k.run_planned([(key, steps) for key in k.take_dirty()])


def records(events: Sequence[Interaction]) -> list[EventRecord]:
    return [EventRecord(e, 0, n) for n, e in enumerate(events)]


def snapshot(k: MemoryKeeper, tenant: str, user: str) -> UserSnapshot:
    return k.store.read_snapshots([(tenant, user)])[(tenant, user)]


def test_absorb_is_the_three_online_operations_then_the_norm_one_event_at_a_time() -> None:
    items = catalogue("acme")
    events = some_events("acme", "u1", 0, 30, T0)
    snap = UserSnapshot("acme", "u1")
    expected = snap
    for n, one in enumerate(events):
        expected = apply_delta(
            expected, extraction(expected, [one], items, P, fake_embed, positions=[n])
        )
        expected = apply_delta(expected, reinforcement(expected, [one], items, P, positions=[n]))
        expected = apply_delta(expected, weakening(expected, [one], items, P, positions=[n]))
        expected = apply_delta(expected, norm_update(expected, [one], items, fake_embed, None, [n]))
    after = apply_delta(snap, absorb(snap, events, items, P, fake_embed))
    assert after.chunks == expected.chunks and after.chunks


@settings(max_examples=40, deadline=None)
@given(
    st.lists(
        st.tuples(st.sampled_from(KINDS), st.integers(0, 5), st.integers(0, 50)),
        min_size=1,
        max_size=40,
    ),
    st.integers(1, 40),
)
def test_absorbing_any_replay_changes_nothing(raw: list[tuple[str, int, int]], cut: int) -> None:
    events = [
        event(n, "acme", "u1", kind, item, T0 + t * 3600) for n, (kind, item, t) in enumerate(raw)
    ]
    items = catalogue("acme")
    snap = UserSnapshot("acme", "u1")
    at = list(range(len(events)))
    snap = apply_delta(snap, absorb(snap, events[:cut], items, P, fake_embed, None, at[:cut]))
    snap = apply_delta(snap, absorb(snap, events[cut:], items, P, fake_embed, None, at[cut:]))
    assert all(0.0 <= c.strength <= 1.0 for c in snap.chunks)
    assert absorb(snap, events, items, P, fake_embed).is_empty
    assert absorb(snap, events[: cut // 2], items, P, fake_embed) == Delta()


def test_maintain_refreshes_the_profile_only_when_its_sources_changed() -> None:
    items = catalogue("acme")
    events = some_events("acme", "u1", 0, 20, T0)
    snap = UserSnapshot("acme", "u1", events=tuple(events))
    snap = apply_delta(snap, absorb(snap, events, items, P, fake_embed))
    assert profile_is_stale(snap, T0 + DAY, P)
    snap = apply_delta(snap, run_planned(snap, EVERYTHING, T0 + DAY, fake_embed))
    assert snap.profile is not None and snap.profile.version == 1
    assert not profile_is_stale(snap, T0 + DAY, P)
    assert run_planned(snap, EVERYTHING, T0 + DAY, fake_embed).is_empty
    # Years later the beliefs of a user idle since then wait for them (the user's own clock),
    # their newest events are kept whatever their age, and the profile stays.
    idle = apply_delta(snap, run_planned(snap, EVERYTHING, T0 + 900 * DAY, fake_embed))
    assert idle.chunks == snap.chunks and idle.events == snap.events
    assert idle.profile == snap.profile
    # On everybody's clock, with no floor of kept events, every belief has decayed away,
    # every event expired, and the profile is rebuilt; only the user's rating norm (a fact
    # about their scale, not a belief) is kept.
    steps = [replace(s, params=replace(s.params, decay_clock="global", min_events_per_user=0))
             for s in EVERYTHING]  # fmt: skip
    gone = apply_delta(snap, run_planned(snap, steps, T0 + 900 * DAY, fake_embed))
    assert [c.facet for c in gone.chunks] == [NORM_FACET] and not gone.events
    assert gone.profile is not None and gone.profile.version == 2


def test_cached_embedder_calls_the_model_once_per_new_text() -> None:
    seen: list[list[str]] = []

    def model(texts: Sequence[str]) -> list[list[float]]:
        seen.append(list(texts))
        return fake_embed(texts)

    embed = CachedEmbedder(model, max_entries=3)
    assert embed(["a", "b", "a"]) == [tuple(v) for v in fake_embed(["a", "b", "a"])]
    embed(["b", "c"])
    embed(["d"])  # evicts "a", the least recently used
    embed(["a"])
    assert seen == [["a", "b"], ["c"], ["d"], ["a"]]


def test_keeper_ingests_absorbs_and_replays_idempotently(tmp_path: Path) -> None:
    k = keeper(tmp_path)
    k.add_items(list(catalogue("acme").values()))
    batch = records(some_events("acme", "u1", 0, 20, OLD) + some_events("acme", "u2", 100, 9, OLD))
    first = k.ingest(batch)
    assert first.inserted == 29 and first.changed_users == 2
    assert {(n.tenant, n.user_id) for n in first.notices} == {("acme", "u1"), ("acme", "u2")}
    before = snapshot(k, "acme", "u1")
    assert before.chunks and len(before.events) == 20
    again = k.ingest(batch)
    assert again.inserted == 0 and again.changed_users == 0
    assert snapshot(k, "acme", "u1") == before
    assert min(n.version for n in again.notices) > max(n.version for n in first.notices)


def test_maintenance_uses_event_time_and_counts_late_items(tmp_path: Path) -> None:
    k = keeper(tmp_path)
    k.ingest(records(some_events("acme", "u1", 0, 20, OLD)))  # items not known yet
    assert not snapshot(k, "acme", "u1").chunks
    k.add_items(list(catalogue("acme").values()))
    result = maintain_all(k)
    assert (result.users, result.changed_users) == (1, 1)
    assert result.ops == {"consolidation": 1, "forgetting": 1, "resynthesis": 1}
    snap = snapshot(k, "acme", "u1")
    # A wall clock in 2033 would have decayed 1997's beliefs to nothing and expired the events.
    assert snap.chunks and len(snap.events) == 20
    assert snap.profile is not None and snap.profile.narrative.startswith(
        ("Mostly chooses", "Enjoys", "Tends")
    )
    assert maintain_all(k).users == 0  # nobody touched since


def test_keeper_keeps_tenants_apart(tmp_path: Path) -> None:
    k = keeper(tmp_path)
    for tenant in ("acme", "globex"):
        k.add_items(list(catalogue(tenant).values()))
    k.ingest(records(some_events("acme", "u1", 0, 20, OLD)))
    maintain_all(k)
    assert snapshot(k, "acme", "u1").chunks
    assert snapshot(k, "globex", "u1") == UserSnapshot("globex", "u1")
    # globex's own catalogue differs: its user's beliefs come from globex items only.
    k.add_items(
        [Item(tenant="globex", item_id="i0", title="x", attributes={"genres": ["Jazz"]}, ts=1)]
    )
    k.ingest(records([event(0, "globex", "u1", "like", 0, OLD)]))
    assert {c.topic for c in snapshot(k, "globex", "u1").chunks} == {"Jazz"}
    assert "Jazz" not in {c.topic for c in snapshot(k, "acme", "u1").chunks}


def test_planned_runs_only_the_chosen_operations_and_counts_them(tmp_path: Path) -> None:
    k = keeper(tmp_path)
    k.add_items(list(catalogue("acme").values()))
    k.ingest(records(some_events("acme", "u1", 0, 20, OLD)))
    assert k.take_dirty() == [("acme", "u1")] and k.take_dirty() == []
    steps = [PlannedStep(Operation.FORGETTING, P, "plan-f")]
    result = k.run_planned([(("acme", "u1"), steps)])
    assert result.ops == {"forgetting": 1} and result.changed_users == 0
    assert snapshot(k, "acme", "u1").profile is None  # resynthesis was not planned
    built = k.run_planned([(("acme", "u1"), [PlannedStep(Operation.RESYNTHESIS, P, "plan-r")])])
    assert built.ops == {"resynthesis": 1} and built.changed_users == 1
    profile = snapshot(k, "acme", "u1").profile
    assert profile is not None
    assert [c["plan_id"] for c in k.store.read_user("acme", "u1").recent_changes
            if c["op"] == "resynthesis"] == ["plan-r"]  # fmt: skip
