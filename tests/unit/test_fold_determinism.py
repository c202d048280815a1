"""The memory is a function of the ordered events, whatever the batches, item timing or replays.

A model of the keeper's protocol drives the pure fold: batches cut anywhere,
each item arriving before the events that name it or after any of them (a
fold waiting for it resumes from the event tier when it arrives), and a crash
that redelivers any suffix of what was already folded. Every run must equal
one batch with the whole catalogue known up front.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from memory_store.compare import change_effects, diff_snapshots
from memory_store.engagement import is_engagement
from memory_store.events import Interaction, Item
from memory_store.operations import LifecycleParams, absorb_stream
from memory_store.rating_norm import is_norm
from memory_store.signals import facet_evidence
from memory_store.tiers import ChangeRecord, Polarity, PreferenceChunk, UserSnapshot, apply_delta
from tests.unit.fake_embedding import fake_embed

P = LifecycleParams()
EMPTY = UserSnapshot("acme", "u1")
GENRES = ["Comedy", "Drama", "Horror", "Sci-Fi"]


def item(n: int, genres: list[str], year: int | None = None) -> Item:
    attrs: dict[str, Any] = {"genres": genres}
    if year is not None:
        attrs["year"] = year
    return Item(tenant="acme", item_id=f"i{n}", title=f"i{n}", attributes=attrs, ts=0)


def rating(n: int, item_id: str, value: float, ts: float, kind: str = "rate") -> Interaction:
    return Interaction.model_validate(
        {"event_id": f"e{n}", "tenant": "acme", "user_id": "u1", "item_id": item_id,
         "type": kind, "value": value if kind == "rate" else None, "ts": ts}
    )  # fmt: skip


@dataclass
class Run:
    """The keeper's protocol over one user: a durable memory, a tier, a hold, items as they come."""

    snap: UserSnapshot = EMPTY
    tier: dict[int, Interaction] = field(default_factory=dict)
    known: dict[str, Item] = field(default_factory=dict)
    held: int | None = None
    changes: list[ChangeRecord] = field(default_factory=list)

    def fold(self, batch: list[tuple[int, Interaction]]) -> None:
        got = absorb_stream(self.snap, [e for _, e in batch], self.known, P, fake_embed,
                            None, [p for p, _ in batch])  # fmt: skip
        self.snap = apply_delta(self.snap, got.delta)
        self.changes += got.delta.changes
        self.held = got.held_at

    def deliver(self, batch: list[tuple[int, Interaction]]) -> None:
        for position, ev in batch:
            self.tier.setdefault(position, ev)
        if self.held is None:
            self.fold(batch)

    def arrive(self, new: Item) -> None:
        self.known[new.item_id] = new
        if self.held is not None:
            self.fold(sorted((p, e) for p, e in self.tier.items() if p >= self.held))


def beliefs(snap: UserSnapshot) -> list[PreferenceChunk]:
    """The snapshot's satisfaction beliefs: without the rating norm and engagement."""
    return [c for c in snap.chunks if not is_norm(c) and not is_engagement(c)]


@st.composite
def streams(draw: st.DrawFn) -> tuple[list[Interaction], list[Item]]:
    items = [
        item(n, draw(st.lists(st.sampled_from(GENRES), min_size=1, max_size=2, unique=True)),
             draw(st.sampled_from([None, 1994, 2001])))
        for n in range(draw(st.integers(2, 6)))
    ]  # fmt: skip
    events = []
    ts = 1_000.0
    for n in range(draw(st.integers(1, 60))):
        ts += draw(st.sampled_from([0.0, 0.0, 0.0, 1.0, 3_600.0, 40 * 86_400.0]))  # bursts
        kind = draw(st.sampled_from(["rate", "rate", "rate", "like", "skip", "view"]))
        value = float(draw(st.integers(1, 5)))
        target = f"i{draw(st.integers(0, len(items)))}"  # one id past the catalogue: never known
        events.append(rating(n, target, value, ts, kind))
    return events, items


def reference(events: list[Interaction], items: list[Item]) -> Run:
    run = Run(known={i.item_id: i for i in items})
    run.deliver(list(enumerate(events)))
    return run


@settings(max_examples=150, deadline=None)
@given(streams(), st.data())
def test_any_batching_item_timing_and_replay_gives_the_same_memory(
    stream: tuple[list[Interaction], list[Item]], data: st.DataObject
) -> None:
    events, items = stream
    positioned = list(enumerate(events))
    inner = st.sets(st.integers(1, len(events) - 1), max_size=8) if len(events) > 1 else None
    cuts = sorted(data.draw(inner)) if inner is not None else []
    batches = [positioned[a:b] for a, b in zip([0, *cuts], [*cuts, len(events)], strict=True)]
    # Each item arrives before batch k (k = 0: before everything; len: after the whole stream).
    arrivals = [data.draw(st.integers(0, len(batches))) for _ in items]
    replay_after = data.draw(st.integers(0, len(batches) - 1))
    replay_from = data.draw(st.integers(0, len(positioned)))
    run = Run()
    for k, batch in enumerate(batches):
        for it, when in zip(items, arrivals, strict=True):
            if when == k:
                run.arrive(it)
        run.deliver(batch)
        if k == replay_after:  # a crash: everything from some offset is delivered again
            run.deliver([p for p in positioned[replay_from:] if p[0] <= batch[-1][0]])
    for it, when in zip(items, arrivals, strict=True):
        if when == len(batches):
            run.arrive(it)
    expected = reference(events, items)
    diff = diff_snapshots(run.snap, expected.snap)
    assert not diff.differs, diff
    assert change_effects(run.changes) == change_effects(expected.changes)
    assert run.held == expected.held


@settings(max_examples=100, deadline=None)
@given(streams())
def test_every_event_with_a_known_item_is_counted_once(
    stream: tuple[list[Interaction], list[Item]],
) -> None:
    events, items = stream
    known = {i.item_id: i for i in items}
    everything = [e for e in events if e.item_id in known]  # the unknown item never arrives
    run = reference(everything, items)
    evidence = facet_evidence("acme", "u1", everything, known, P.min_weight)
    counted = sum(c.evidence_count for c in run.snap.chunks if not is_norm(c))
    assert counted == len(evidence)  # satisfaction and engagement alike
    assert run.held is None


def test_order_inside_a_batch_is_kept() -> None:
    """Six comedies rated 5, 5, 1, 1, 5, 1: one batch, one per batch, two of three agree."""
    comedy = {"i0": item(0, ["Comedy"])}
    events = [rating(n, "i0", v, 1_000.0) for n, v in enumerate([5, 5, 1, 1, 5, 1])]
    results = []
    for size in (6, 1, 3, 2):
        run = Run(known=comedy)
        for start in range(0, 6, size):
            run.deliver([(n, events[n]) for n in range(start, min(6, start + size))])
        (chunk,) = beliefs(run.snap)
        results.append((chunk.polarity, chunk.strength, chunk.evidence_count))
    assert len(set(results)) == 1
    assert results[0][2] == 6


def test_a_fold_waits_for_an_unknown_item_and_resumes_in_order() -> None:
    catalogue = {"i0": item(0, ["Comedy"]), "i1": item(1, ["Comedy"])}
    events = [rating(0, "i0", 5, 1.0), rating(1, "i1", 1, 1.0), rating(2, "i0", 1, 1.0)]
    run = Run(known={"i0": catalogue["i0"]})
    run.deliver(list(enumerate(events)))
    assert run.held == 1  # e1's item is unknown: e2 waits behind it
    (chunk,) = beliefs(run.snap)
    assert chunk.evidence == ("e0",) and chunk.polarity is Polarity.LIKE
    run.arrive(catalogue["i1"])
    assert run.held is None
    assert not diff_snapshots(run.snap, reference(events, list(catalogue.values())).snap).differs


def test_a_rating_at_the_users_norm_still_waits_for_its_item() -> None:
    """A new user's 3 stars say nothing of taste but that they chose the item (engagement),
    so the fold waits for the item as for any event that teaches something."""
    run = Run(known={"i0": item(0, ["Drama"])})
    run.deliver([(0, rating(0, "i1", 3, 1.0)), (1, rating(1, "i0", 5, 2.0))])
    assert run.held == 0 and not run.snap.chunks
    run.arrive(item(1, ["Comedy"]))
    assert run.held is None
    assert [(c.facet, c.key) for c in beliefs(run.snap)] == [("genre", "drama")]
    engaged = sorted(c.key for c in run.snap.chunks if is_engagement(c))
    assert engaged == ["genre:comedy", "genre:drama"]
