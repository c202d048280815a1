"""The writer child's item codebook without Kafka: unindexed until a tenant has enough data,
fitted from the catalogue and the event tier, new items indexed at once and visible to a
reader process's codebook, refresh with bounded churn, tenants kept apart."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest
import torch

from memory_store.candidates import COLLAB, CONTENT, content_vectors
from memory_store.codebook.item_codebook import ItemCodebook, UnknownTenantError
from memory_store.codebook.store import CodebookStore
from memory_store.events import Interaction, Item
from memory_store.lance.catalogue import ItemCatalogue, open_catalogue
from memory_store.lance.codebook_sources import CodebookSources
from memory_store.lance.store import open_store
from memory_store.store import EventRecord, MemoryStore
from streams.settings import CodebookSettings
from streams.worker.writer.codebook import UpkeepOutcome, WorkerCodebook
from tests.unit.fake_embedding import fake_embed

PARAMS = CodebookSettings(min_items=100, min_events=200, refresh_s=3600.0, fit_steps=80)
USERS = 40


@pytest.fixture(autouse=True)
def one_thread() -> Iterator[None]:
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def catalogue_items(tenant: str, n: int, start: int = 0) -> list[Item]:
    return [
        Item(
            tenant=tenant,
            item_id=f"{tenant}-{i}",
            title=f"{tenant} film {i}",
            attributes={"genres": [f"g{i % 7}"]},
            ts=1.0,
        )
        for i in range(start, start + n)
    ]


def likes(tenant: str, users: int, per_user: int, tag: str = "e") -> list[EventRecord]:
    """User ``u`` likes items ``3u .. 3u + per_user - 1`` in that order (a sliding window)."""
    return [
        EventRecord(
            Interaction(
                event_id=f"{tag}-{u}-{k}",
                tenant=tenant,
                user_id=f"u{u}",
                item_id=f"{tenant}-{3 * u + k}",
                type="like",
                ts=1_700_000_000.0 + k,
            )
        )
        for u in range(users)
        for k in range(per_user)
    ]


@pytest.fixture
def uri(tmp_path: Path) -> str:
    return str(tmp_path / "lancedb")


@pytest.fixture
def store(uri: str) -> MemoryStore:
    return open_store(uri)


@pytest.fixture
def catalogue(uri: str) -> ItemCatalogue:
    return open_catalogue(uri)


def child(uri: str, catalogue: ItemCatalogue, **overrides: object) -> WorkerCodebook:
    params = PARAMS.model_copy(update=overrides)
    return WorkerCodebook(uri, catalogue, fake_embed, params)


def add(catalogue: ItemCatalogue, worker: WorkerCodebook, items: list[Item]) -> tuple[int, int]:
    """What the writer does per items batch: the catalogue first, then the codebook."""
    catalogue.write_items(items)
    outcome = worker.index_items(items)
    assert len(outcome.assign_seconds) == outcome.indexed
    return outcome.indexed, outcome.unindexed


def upkeep_settled(worker: WorkerCodebook) -> UpkeepOutcome:
    """An upkeep and, if it started first fits, the one after they finished (the timer's
    follow-up): fits run in the background and are installed by the next call."""
    first = worker.upkeep()
    if not first.started:
        return first
    assert first.fitted == [] and first.running == first.started
    worker.fits.wait(120)
    return worker.upkeep()


def test_items_stay_unindexed_until_the_tenant_has_enough_items_and_events(
    uri: str, store: MemoryStore, catalogue: ItemCatalogue
) -> None:
    worker = child(uri, catalogue)
    assert add(catalogue, worker, catalogue_items("acme", 60)) == (0, 60)
    store.write_events(likes("acme", USERS, 6))  # 240 events: enough
    assert worker.upkeep().fitted == []  # 60 items: not enough
    assert add(catalogue, worker, catalogue_items("acme", 60, start=60)) == (0, 60)
    done = upkeep_settled(worker)
    assert (done.fitted, done.refreshed, done.failed, done.running) == (["acme"], [], {}, [])
    by_facet = {f.facet: f for f in done.facets}
    assert by_facet[CONTENT].items == 120  # the whole catalogue, unindexed items included
    assert 0 < by_facet[COLLAB].items <= 120  # the items users engaged with
    assert all(0 < f.utilisation <= 1 and 0 < f.leaf_p50 <= f.leaf_p99 <= f.leaf_max
               for f in done.facets)  # fmt: skip
    assert worker.upkeep().fitted == []  # fitted once


def test_a_new_item_is_indexed_at_once_and_a_reader_that_syncs_returns_it(
    uri: str, store: MemoryStore, catalogue: ItemCatalogue
) -> None:
    worker = child(uri, catalogue)
    add(catalogue, worker, catalogue_items("acme", 120))
    store.write_events(likes("acme", USERS, 6))
    assert upkeep_settled(worker).fitted == ["acme"]
    reader = ItemCodebook(store=CodebookStore(uri))  # another process's codebook
    new = catalogue_items("acme", 1, start=500)[0]
    query = {CONTENT: content_vectors(fake_embed, [new]).vectors}
    assert new.item_id not in reader.candidates("acme", query, 5)
    assert add(catalogue, worker, [new]) == (1, 0)
    reader.sync()
    assert reader.candidates("acme", query, 5)[0] == new.item_id
    # A restarted worker loads the model from the store: no second fit, items indexed at once.
    again = child(uri, catalogue)
    assert add(catalogue, again, catalogue_items("acme", 1, start=501)) == (1, 0)
    assert again.upkeep().fitted == []


def test_tenants_never_share_items_or_candidates(
    uri: str, store: MemoryStore, catalogue: ItemCatalogue
) -> None:
    worker = child(uri, catalogue)
    for tenant in ("acme", "globex"):
        add(catalogue, worker, catalogue_items(tenant, 120))
        store.write_events(likes(tenant, USERS, 6))
    assert upkeep_settled(worker).fitted == ["acme", "globex"]
    new = catalogue_items("acme", 1, start=900)[0]
    add(catalogue, worker, [new])
    reader = ItemCodebook(store=CodebookStore(uri))
    query = {CONTENT: content_vectors(fake_embed, [new]).vectors}
    reader.candidates("globex", query, 1)  # loaded before the sync, like a serving reader
    reader.sync()
    found = reader.candidates("globex", query, 500, pool=500)
    assert len(found) == 120 and all(i.startswith("globex-") for i in found)
    assert new.item_id in reader.candidates("acme", query, 5)
    with pytest.raises(UnknownTenantError):
        reader.candidates("initech", query, 5)


def test_refresh_runs_when_due_with_bounded_churn_and_only_on_new_data(
    uri: str, store: MemoryStore, catalogue: ItemCatalogue
) -> None:
    clock = [0.0]
    params = CodebookSettings(min_items=100, min_events=200, refresh_s=60.0, max_churn=0.05,
                            fit_steps=80)  # fmt: skip
    worker = WorkerCodebook(uri, catalogue, fake_embed, params, clock=lambda: clock[0])
    add(catalogue, worker, catalogue_items("acme", 120))
    store.write_events(likes("acme", USERS, 6))
    assert upkeep_settled(worker).fitted == ["acme"]
    clock[0] += 30
    assert worker.upkeep().refreshed == []  # not due
    clock[0] += 31
    assert store.write_events(likes("acme", USERS, 6)).inserted == 0  # a replay stores nothing
    assert worker.upkeep().refreshed == []  # due, but nothing new since the fit
    later = [EventRecord(e.event.model_copy(update={"event_id": f"x{n}", "user_id": f"v{n % 7}"}))
             for n, e in enumerate(likes("acme", USERS, 6))]  # fmt: skip
    assert store.write_events(later).inserted == len(later)
    assert worker.upkeep().refreshed == []  # new events, but not due yet
    clock[0] += 61
    done = worker.upkeep()
    assert done.refreshed == ["acme"]
    churn = {f.facet: f.churn for f in done.facets}
    assert churn.keys() == {CONTENT, COLLAB}
    assert all(c is not None and 0.0 <= c <= 0.05 for c in churn.values())
    assert CodebookStore(uri).latest_version("acme") == 2


class GatedEmbed:
    """fake_embed that holds calls about ``tenant``'s films until opened (or fails them)."""

    def __init__(self, tenant: str) -> None:
        self.tenant, self.open, self.fail = tenant, threading.Event(), False
        self.waiting = threading.Event()

    def __call__(self, texts: Sequence[str]) -> list[list[float]]:
        if any(f"{self.tenant} film" in t for t in texts) and not self.open.is_set():
            self.waiting.set()
            assert self.open.wait(60)
        if self.fail:
            raise RuntimeError("embedder down")
        return fake_embed(texts)


def test_a_first_fit_runs_beside_the_writer_and_files_items_that_arrived_during_it(
    uri: str, store: MemoryStore, catalogue: ItemCatalogue
) -> None:
    embed = GatedEmbed("acme")
    embed.open.set()
    worker = WorkerCodebook(uri, catalogue, embed, PARAMS)
    add(catalogue, worker, catalogue_items("globex", 120))
    store.write_events(likes("globex", USERS, 6))
    assert upkeep_settled(worker).fitted == ["globex"]
    embed.open.clear()
    add(catalogue, worker, catalogue_items("acme", 120))
    store.write_events(likes("acme", USERS, 6))
    started = worker.upkeep()
    assert (started.started, started.running, started.fitted) == (["acme"], ["acme"], [])
    assert embed.waiting.wait(60)  # the fit is embedding acme's catalogue, and stays there
    # Meanwhile the writer goes on: another tenant's items are filed, acme's wait.
    assert add(catalogue, worker, catalogue_items("globex", 1, start=700)) == (1, 0)
    late = catalogue_items("acme", 2, start=800)
    catalogue.write_items(late)
    assert worker.index_items(late).unindexed == 2  # noted, not embedded: no model yet
    waiting = worker.install_fits()
    assert (waiting.fitted, waiting.running) == ([], ["acme"])
    embed.open.set()
    worker.fits.wait(120)
    done = worker.install_fits()
    assert (done.fitted, done.running, done.failed) == (["acme"], [], {})
    assert {f.facet: f.items for f in done.facets}[CONTENT] == 122  # catalogue + the late two
    reader = ItemCodebook(store=CodebookStore(uri))
    query = {CONTENT: content_vectors(fake_embed, late[:1]).vectors}
    assert reader.candidates("acme", query, 5)[0] == late[0].item_id
    assert worker.upkeep().started == []


def test_a_failed_first_fit_is_reported_and_started_again(
    uri: str, store: MemoryStore, catalogue: ItemCatalogue
) -> None:
    embed = GatedEmbed("acme")
    embed.open.set()
    worker = WorkerCodebook(uri, catalogue, embed, PARAMS)
    add(catalogue, worker, catalogue_items("acme", 120))
    store.write_events(likes("acme", USERS, 6))
    embed.fail = True
    assert worker.upkeep().started == ["acme"]
    worker.fits.wait(60)
    failed = worker.install_fits()
    assert failed.fitted == [] and "embedder down" in failed.failed["acme"]
    assert CodebookStore(uri).latest_version("acme") is None
    embed.fail = False
    assert upkeep_settled(worker).fitted == ["acme"]


def test_engagement_is_positive_events_per_user_in_time_order(uri: str, store: MemoryStore) -> None:
    def event(
        n: int, user: str, item: str, kind: str, value: float | None, ts: float
    ) -> EventRecord:
        return EventRecord(Interaction(event_id=f"e{n}", tenant="acme", user_id=user,
                                       item_id=item, type=kind, value=value, ts=ts))  # fmt: skip

    store.write_events(
        [
            event(0, "u1", "b", "like", None, 20.0),
            event(1, "u1", "a", "view", None, 10.0),
            event(2, "u1", "c", "dislike", None, 5.0),
            event(3, "u1", "d", "rate", 2.0, 30.0),
            event(4, "u1", "e", "rate", 5.0, 40.0),
            event(5, "u2", "a", "skip", None, 1.0),
        ]
    )
    store.write_events([EventRecord(Interaction(event_id="o", tenant="globex", user_id="u1",
                                                item_id="z", type="like", ts=1.0))])  # fmt: skip
    sources = CodebookSources(uri)
    assert sources.engagement("acme") == {"u1": ["a", "b", "e"]}
    assert sources.engagement("acme", max_events=2) == {"u1": ["b", "e"]}
    assert sources.engagement("acme", since=time.time() + 60) == {}
    assert (sources.count_events("acme"), sources.count_events("globex")) == (6, 1)
