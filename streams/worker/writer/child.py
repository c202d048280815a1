"""The memory writer: one child process that owns the memory and does the per-event work.

Faust's own per-message machinery already takes most of one core in the
worker's main process (see the ingest benchmark), so validation, the Arrow
mapping and the LanceDB write run in a separate process rather than a thread:
a thread would compete with Faust for the GIL. One process means one writer
per table, so batch writes, maintenance and compactions never race; the
child runs the ``MemoryKeeper`` (store, absorb, maintain) and MiniLM, loaded on
first use. Each call that writes the memory is one journal unit
(``memory_store.journal``): a crash inside it is rolled back when the next
writer starts, and the unit's input, never committed, is delivered again.
"""

from __future__ import annotations

import functools
import gc
import logging
import multiprocessing
import os
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ParamSpec, TypeVar, cast

from memory_store.cached_embedder import CachedEmbedder
from memory_store.catalogue import open_catalogue
from memory_store.embedding import MiniLMEmbedder
from memory_store.journal import WriteJournal
from memory_store.keeper import IngestResult, MaintainResult, MemoryKeeper
from memory_store.operations import Narrator
from memory_store.planner_state import open_planner_state
from memory_store.store import open_store
from planner.plan import Plan
from planner.policies import FixedIntervalPolicy, Policy, RulesPolicy
from planner.state import Deferred, PlanningState, PlanRound, Request
from streams.ingest.batch import Consumed, DeadLetter, split_batch, split_items
from streams.ingest.contract import Limits
from streams.settings import Settings
from streams.worker.writer.codebook import IndexOutcome, UpkeepOutcome, WorkerCodebook
from streams.worker.writer.rounds import EventRounds, RoundResult

__all__ = [
    "BatchOutcome",
    "ItemsOutcome",
    "MaintainOutcome",
    "MemoryWriter",
    "RoundOutcome",
    "decode_and_write",
]

_keeper: MemoryKeeper | None = None
_codebook: WorkerCodebook | None = None

Notice = tuple[str, str, int]
"""(tenant, user_id, version) of a memory change, as a plain tuple for the process hop."""


@dataclass(frozen=True, slots=True)
class MaintainOutcome:
    """One maintenance pass: users visited, users changed, and their change notices."""

    users: int
    changed_users: int
    pending_users: int
    seconds: float
    notices: list[Notice] = field(default_factory=list)
    # Profiles narrated in this pass by source: "llm", or why the template stood in.
    narratives: dict[str, int] = field(default_factory=dict)
    # Maintenance operations run, by name (see MaintainResult.ops).
    ops: dict[str, int] = field(default_factory=dict)
    # Event-time rounds: operations planned for a later event time, waiting in the writer.
    scheduled: int | None = None


@dataclass(frozen=True, slots=True)
class RoundOutcome:
    """An event-time planner round the writer ran: the plans, what ran, and its pass."""

    plans: list[Plan]
    ran: list[Request]
    maintained: MaintainOutcome
    idle: bool = False  # closed because its partition went quiet


@dataclass(frozen=True, slots=True)
class BatchOutcome:
    """What happened to one batch: small enough to send back between processes."""

    consumed: int
    valid: int
    inserted: int
    write_seconds: float
    dead: list[DeadLetter] = field(default_factory=list)
    positions: dict[int, int] = field(default_factory=dict)
    changed_users: int = 0
    notices: list[Notice] = field(default_factory=list)
    rounds: list[RoundOutcome] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class ItemsOutcome:
    """What happened to one batch of catalogue messages."""

    stored: int
    dead: list[DeadLetter] = field(default_factory=list)
    # Items without genres in this batch: "tagged" by the LLM extractor, or "untagged".
    tagging: dict[str, int] = field(default_factory=dict)
    codebook: IndexOutcome = field(default_factory=IndexOutcome)
    # Users whose fold waited for one of these items, folded on at once: their notices.
    notices: list[Notice] = field(default_factory=list)


def decode_and_write(
    keeper: MemoryKeeper,
    messages: Sequence[Consumed],
    now: float,
    limits: Limits,
    observe: Callable[[MemoryKeeper, IngestResult], None] | None = None,
    rounds: EventRounds | None = None,
) -> BatchOutcome:
    """Validate a batch, store its good events once, absorb them, and report the rest.

    With event-time ``rounds``, the planner rounds that fall inside the batch run
    where they fall (between the events before and after each boundary).
    """
    split = split_batch(messages, now, limits)
    started = time.perf_counter()
    ran: list[RoundResult] = []
    if rounds is None:
        results = [keeper.ingest(split.records)]
        if observe is not None:
            observe(keeper, results[0])
    else:
        results, ran = rounds.ingest(keeper, split.records)
    return BatchOutcome(
        consumed=len(messages),
        valid=len(split.records),
        inserted=sum(r.inserted for r in results),
        write_seconds=time.perf_counter() - started,
        dead=split.dead,
        positions=split.positions,
        changed_users=sum(r.changed_users for r in results),
        notices=[(n.tenant, n.user_id, n.version) for r in results for n in r.notices],
        rounds=[round_outcome(keeper, r) for r in ran],
    )


def round_outcome(keeper: MemoryKeeper, r: RoundResult) -> RoundOutcome:
    """A round as the worker's main process publishes and counts it."""
    m = r.result
    notices = [(n.tenant, n.user_id, n.version) for n in m.notices]
    narratives = dict(_narrator.outcomes) if _narrator is not None else {}
    scheduled = None if _rounds is None else _rounds.planning.timed_ops
    maintained = MaintainOutcome(
        m.users, m.changed_users, keeper.pending_users, r.seconds, notices,
        _narrated(narratives), dict(m.ops), scheduled,
    )  # fmt: skip
    return RoundOutcome(r.plans, r.ran, maintained, r.idle)


_narrated_before: dict[str, int] = {}


def _narrated(now: dict[str, int]) -> dict[str, int]:
    """Narratives written since the last call, by source."""
    before = _narrated_before
    out = {k: v - before.get(k, 0) for k, v in now.items() if v > before.get(k, 0)}
    _narrated_before.update(now)
    return out


_narrator: Any = None
_planning: PlanningState | None = None
_rounds: EventRounds | None = None
_journal: WriteJournal | None = None
_log = logging.getLogger(__name__)
_P = ParamSpec("_P")
_R = TypeVar("_R")


def _keeper_for(settings: Settings, embedder: MiniLMEmbedder) -> MemoryKeeper:
    """The keeper, with the LLM narrator and item tagger when configured (one shared model)."""
    global _narrator
    uri = settings.lancedb_uri
    keeper = MemoryKeeper(open_store(uri), open_catalogue(uri), CachedEmbedder(embedder))
    if settings.narrator != "llm" and settings.extractor != "llm":
        return keeper
    from planner.budget import Budget
    from planner.narrator import LazyLocalLLM, LLMNarrator
    from planner.tagger import DEFAULT_GENRES, LLMItemTagger

    cache = settings.llm_cache_dir
    backend = LazyLocalLLM(None if cache is None else Path(cache))
    if settings.narrator == "llm":
        _narrator = LLMNarrator(backend, Budget(settings.narrator_calls_per_min, 10**9))
        keeper.narrate = cast(Narrator, _narrator)
    if settings.extractor == "llm":
        genres = settings.extractor_genres or DEFAULT_GENRES
        tagger = LLMItemTagger(backend, Budget(settings.extractor_calls_per_min, 10**9), genres)
        keeper.tagger, keeper.tagger_source = tagger, tagger.source
    return keeper


def _open(settings: Settings) -> None:
    global _keeper, _codebook, _rounds, _journal
    uri = settings.lancedb_uri
    _journal = WriteJournal(uri)
    torn = _journal.recover()  # before anything reads the memory
    if torn:
        _log.warning("rolled back a unit of work a crash left open: %s", ", ".join(torn))
    embedder = MiniLMEmbedder()  # one model: the keeper's topics (cached) and item texts
    _keeper = _keeper_for(settings, embedder)
    if settings.codebook.enabled:
        _codebook = WorkerCodebook(uri, _keeper.catalogue, embedder, settings.codebook)
    global _planning
    _planning = PlanningState(open_planner_state(uri))
    if settings.event_rounds:  # decisions are pure and quick: rounds on event time
        fixed = settings.policy == "fixed"
        policy: Policy = FixedIntervalPolicy(0.0) if fixed else RulesPolicy()
        _rounds = EventRounds(_planning, policy, settings.round_event_s, settings.partitions)
    # Each batch allocates ~10 objects per event and keeps none: collect young
    # objects less often, and never rescan what start-up loaded (~15% per event).
    gc.freeze()
    gc.set_threshold(50_000, 50, 100)
    parent = os.getppid()
    threading.Thread(target=_exit_with_parent, args=(parent,), daemon=True).start()


def _exit_with_parent(parent: int) -> None:
    """A worker killed with SIGKILL (or os._exit) cannot stop us: notice and go."""
    while os.getppid() == parent:
        time.sleep(0.5)
    os._exit(0)


def _warm_up() -> None:
    """Load the embedding model before the first batch needs it (seconds of torch import)."""
    _ready().embed(["warm up"])


def _planner() -> PlanningState:
    assert _planning is not None, "writer process not initialised"
    return _planning


def _ready() -> MemoryKeeper:
    assert _keeper is not None, "writer process not initialised"
    return _keeper


def _unit(work: Callable[_P, _R]) -> Callable[_P, _R]:
    """Run ``work`` as one journal unit: all of its writes land, or a restart undoes them."""

    @functools.wraps(work)
    def run(*args: _P.args, **kwargs: _P.kwargs) -> _R:
        assert _journal is not None, "writer process not initialised"
        with _journal.unit():
            return work(*args, **kwargs)

    return run


@_unit
def _write(rows: list[tuple[Any, ...]], limits: Limits) -> BatchOutcome:
    messages = list(map(Consumed._make, rows))
    return decode_and_write(_ready(), messages, time.time(), limits, _planner().observe, _rounds)


@_unit
def _write_items(rows: list[tuple[Any, ...]], limits: Limits) -> ItemsOutcome:
    items, dead = split_items(list(map(Consumed._make, rows)), time.time(), limits)
    keeper = _ready()
    before = dict(keeper.tagging)
    stored = keeper.add_items(items)
    tagging = {k: v - before.get(k, 0) for k, v in keeper.tagging.items() if v > before.get(k, 0)}
    indexed = IndexOutcome() if _codebook is None else _codebook.index_items(items)
    # Users waiting for these items fold on now, not at the next planner round.
    late = keeper.resolve_late_items()
    notices = [(n.tenant, n.user_id, n.version) for n in late.notices]
    return ItemsOutcome(stored, dead, tagging, indexed, notices)


def _codebook_upkeep() -> UpkeepOutcome:
    return UpkeepOutcome() if _codebook is None else _codebook.upkeep()


def _codebook_install() -> UpkeepOutcome:
    return UpkeepOutcome() if _codebook is None else _codebook.install_fits()


@_unit
def _plan_round(max_users: int | None) -> PlanRound:
    return _planner().plan_round(_ready(), max_users)


@_unit
def _recover(partitions: list[int]) -> MaintainOutcome:
    if _rounds is not None:
        rounds = _rounds
        return _maintained(lambda keeper: rounds.recover(keeper, partitions))
    return _maintained(lambda keeper: _planner().recover(keeper, partitions))


@_unit
def _close_idle(idle_s: float, caught_up: set[int]) -> list[RoundOutcome]:
    if _rounds is None:
        return []
    keeper = _ready()
    return [round_outcome(keeper, r) for r in _rounds.close_idle(keeper, idle_s, caught_up)]


@_unit
def _run_planned(requests: list[Request], deferred: list[Deferred]) -> MaintainOutcome:
    planning = _planner()
    planning.defer(deferred)
    return _maintained(lambda keeper: planning.run_requests(keeper, requests))


def _maintained(run: Callable[[MemoryKeeper], MaintainResult]) -> MaintainOutcome:
    """Run a maintenance pass and report it with the narratives it wrote."""
    keeper = _ready()
    started = time.perf_counter()
    result = run(keeper)
    after = dict(_narrator.outcomes) if _narrator is not None else {}
    return MaintainOutcome(
        users=result.users,
        changed_users=result.changed_users,
        pending_users=keeper.pending_users,
        seconds=time.perf_counter() - started,
        notices=[(n.tenant, n.user_id, n.version) for n in result.notices],
        narratives=_narrated(after),
        ops=dict(result.ops),
        scheduled=None if _rounds is None else _rounds.planning.timed_ops,
    )


def _compact() -> None:
    _ready().compact()
    if _codebook is not None:
        _codebook.compact()
    _planner().compact()


class MemoryWriter:
    """Submit batches and compactions to the writer process; results come back as futures.

    If the child dies, every pending and later future fails with BrokenProcessPool,
    which the agent treats as fatal (the batch was not acknowledged).
    """

    def __init__(self, settings: Settings) -> None:
        self._limits = settings.limits
        self._pool = ProcessPoolExecutor(
            max_workers=1,
            mp_context=multiprocessing.get_context("spawn"),  # never fork a threaded process
            initializer=_open,
            initargs=(settings,),  # the whole settings object, pickled (secrets included)
        )
        # Start the child and load MiniLM now: the pool would otherwise start on the first batch.
        self._pool.submit(_warm_up)

    def write(self, messages: list[Consumed]) -> Future[BatchOutcome]:
        # Plain tuples pickle ~3x faster than named tuples: this is most of the hand-over cost.
        return self._pool.submit(_write, list(map(tuple, messages)), self._limits)

    def write_items(self, messages: list[Consumed]) -> Future[ItemsOutcome]:
        return self._pool.submit(_write_items, list(map(tuple, messages)), self._limits)

    def plan_round(self, max_users: int | None = None) -> Future[PlanRound]:
        return self._pool.submit(_plan_round, max_users)

    def close_idle(self, idle_s: float, caught_up: set[int]) -> Future[list[RoundOutcome]]:
        """Close the open event-time round of ``caught_up`` partitions quiet for ``idle_s``."""
        return self._pool.submit(_close_idle, idle_s, caught_up)

    def recover(self, partitions: set[int]) -> Future[MaintainOutcome]:
        """Look again at users of newly owned partitions that a crash left unmaintained."""
        return self._pool.submit(_recover, sorted(partitions))

    def run_planned(
        self, requests: list[Request], deferred: list[Deferred]
    ) -> Future[MaintainOutcome]:
        return self._pool.submit(_run_planned, requests, deferred)

    def compact(self) -> Future[None]:
        return self._pool.submit(_compact)

    def codebook_upkeep(self) -> Future[UpkeepOutcome]:
        """Fit tenants that became ready, refresh those due (``streams.worker.writer.codebook``)."""
        return self._pool.submit(_codebook_upkeep)

    def codebook_install(self) -> Future[UpkeepOutcome]:
        """Install first fits that finished in the child's background (cheap)."""
        return self._pool.submit(_codebook_install)

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=False)
