"""The keeper on real LanceDB: two stores built from one stream are identical, whatever the batches.

Store tier: each example opens fresh LanceDB stores in a temp dir, so examples are few.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from memory_store.compare import diff_stores
from memory_store.events import Interaction
from memory_store.keeper import CachedEmbedder, MemoryKeeper
from memory_store.lance.catalogue import open_catalogue
from memory_store.lance.store import open_store
from memory_store.operations import LifecycleParams
from memory_store.store import EventRecord
from streams.cli import app
from tests.store.test_keeper import maintain_all
from tests.store.test_tier_store import KINDS, catalogue, event
from tests.unit.fake_embedding import fake_embed

OLD = 880_000_000.0


def keeper(path: Path, params: LifecycleParams | None = None) -> MemoryKeeper:
    return MemoryKeeper(
        open_store(str(path)), open_catalogue(str(path)), CachedEmbedder(fake_embed), params,
        clock=lambda: 2e9,
    )  # fmt: skip


def stream(raw: list[tuple[int, str, int]]) -> list[EventRecord]:
    """Records on one partition: offsets in production order, users interleaved, in bursts of
    seven events in the same second (as MovieLens users rate)."""
    events: list[Interaction] = [
        event(n, "acme", f"u{user}", kind, item, OLD + (n // 7) * 60)
        for n, (user, kind, item) in enumerate(raw)
    ]
    return [EventRecord(e, 0, n) for n, e in enumerate(events)]


@settings(max_examples=12, deadline=None)
@given(
    st.lists(
        st.tuples(st.integers(0, 3), st.sampled_from(KINDS), st.integers(0, 5)),
        min_size=5,
        max_size=80,
    ),
    st.data(),
)
def test_two_stores_from_one_stream_are_identical(
    raw: list[tuple[int, str, int]], data: st.DataObject
) -> None:
    records = stream(raw)
    items = list(catalogue("acme").values())
    cuts = sorted(data.draw(st.sets(st.integers(1, len(records) - 1), max_size=6)))
    items_at = data.draw(st.integers(0, len(cuts) + 1))  # the catalogue arrives late, or not
    replay_from = data.draw(st.integers(0, len(records) - 1))
    with tempfile.TemporaryDirectory() as tmp:
        one, two = keeper(Path(tmp) / "one"), keeper(Path(tmp) / "two")
        one.add_items(items)
        one.ingest(records)
        bounds = list(zip([0, *cuts], [*cuts, len(records)], strict=True))
        for k, (a, b) in enumerate(bounds):
            if k == items_at:
                two.add_items(items)
                two.resolve_late_items()
            two.ingest(records[a:b])
            if k == len(bounds) // 2:  # a crash: the consumer is handed an earlier offset again
                two.ingest(records[replay_from:b])
        if items_at >= len(bounds):
            two.add_items(items)
            two.resolve_late_items()
        assert two.held_users == 0
        found = diff_stores(one.store, two.store)
        assert found.users == len({r.event.user_id for r in records})
        assert not found.differing, found.differing[:2]


def test_an_event_produced_again_at_a_new_offset_counts_once(tmp_path: Path) -> None:
    k = keeper(tmp_path)
    k.add_items(list(catalogue("acme").values()))
    first = [EventRecord(event(n, "acme", "u1", "like", n % 3, OLD + n), 0, n) for n in range(9)]
    k.ingest(first)
    before = k.store.read_snapshots([("acme", "u1")])[("acme", "u1")]
    again = [EventRecord(r.event, 0, 100 + n) for n, r in enumerate(first)]
    assert k.ingest(again).changed_users == 0
    assert k.store.read_snapshots([("acme", "u1")])[("acme", "u1")] == before


def test_retention_reaches_every_stored_event_of_a_heavy_user(tmp_path: Path) -> None:
    k = keeper(tmp_path, LifecycleParams(max_events_per_user=5))
    k.add_items(list(catalogue("acme").values()))
    k.ingest([EventRecord(event(n, "acme", "u1", "view", 0, OLD + n), 0, n) for n in range(23)])
    maintain_all(k)
    assert k.store.count_events("acme") == 5


def test_memory_diff_reports_users_that_differ(tmp_path: Path) -> None:
    items = list(catalogue("acme").values())
    records = [EventRecord(event(n, "acme", f"u{n % 2}", "like", n % 4, OLD + n), 0, n)
               for n in range(12)]  # fmt: skip
    for name, part in (("a", records), ("b", records), ("c", records[:-1])):
        k = keeper(tmp_path / name)
        k.add_items(items)
        k.ingest(part)
    runner = CliRunner()
    same = runner.invoke(app, ["memory", "diff", str(tmp_path / "a"), str(tmp_path / "b")])
    assert same.exit_code == 0, same.output
    assert "2 users compared: 0 differ" in same.output
    other = runner.invoke(
        app, ["memory", "diff", str(tmp_path / "a"), str(tmp_path / "c"), "--json"]
    )
    assert other.exit_code == 1
    assert '"users_differing": 1' in other.output
