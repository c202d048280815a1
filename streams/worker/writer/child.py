"""The writer process: one ``WriterChild`` owns the memory and does the per-event work.

Faust's own per-message machinery already takes most of one core in the
worker's main process (see the ingest benchmark), so validation, the Arrow
mapping and the LanceDB write run in a separate process rather than a thread:
a thread would compete with Faust for the GIL. One process means one writer
per table, so batch writes, maintenance and compactions never race; the
child runs the ``MemoryKeeper`` (store, absorb, maintain) and MiniLM, loaded on
first use. Each call that writes the memory is one journal unit
(``memory_store.lance.journal``): a crash inside it is rolled back when the next
writer starts, and the unit's input, never committed, is delivered again.

``WriterChild`` is the whole pipeline from consumed messages to stored memory,
with no Kafka in it: the process pool holds one (``open_child``) and the worker's
client (``streams.worker.writer.client``) calls its methods by name; tests build
one directly and hand it raw messages.
"""

from __future__ import annotations

import gc
import logging
import os
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, cast

from memory_store.cached_embedder import CachedEmbedder
from memory_store.embedding import MiniLMEmbedder
from memory_store.keeper import IngestResult, MaintainResult, MemoryKeeper
from memory_store.lance.catalogue import open_catalogue
from memory_store.lance.journal import WriteJournal
from memory_store.lance.planner_state import open_planner_state
from memory_store.lance.store import open_store
from memory_store.operations import Narrator
from planner.policies import FixedIntervalPolicy, Policy, RulesPolicy
from planner.state import Deferred, PlanningState, PlanRound, Request
from streams.ingest.batch import Consumed, split_batch, split_items
from streams.ingest.contract import Limits
from streams.settings import Settings
from streams.worker.writer.codebook import IndexOutcome, UpkeepOutcome, WorkerCodebook
from streams.worker.writer.outcomes import (
    BatchOutcome,
    ItemsOutcome,
    MaintainOutcome,
    Notice,
    RoundOutcome,
)
from streams.worker.writer.rounds import EventRounds, RoundResult

__all__ = ["WriterChild", "decode_and_write", "open_child", "run_in_child"]

_log = logging.getLogger(__name__)


def decode_and_write(
    keeper: MemoryKeeper,
    messages: Sequence[Consumed],
    now: float,
    limits: Limits,
    observe: Callable[[MemoryKeeper, IngestResult], None] | None = None,
    rounds: EventRounds | None = None,
    on_round: Callable[[RoundResult], RoundOutcome] | None = None,
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
        rounds=[on_round(r) for r in ran] if on_round is not None else [],
    )


def _notices(result: IngestResult | MaintainResult) -> list[Notice]:
    return [(n.tenant, n.user_id, n.version) for n in result.notices]


class WriterChild:
    """The memory's single writer: every call that writes is one journal unit."""

    def __init__(
        self,
        settings: Settings,
        keeper: MemoryKeeper,
        journal: WriteJournal,
        planning: PlanningState,
        codebook: WorkerCodebook | None = None,
        narrator: Any = None,
    ) -> None:
        self.limits = settings.limits
        self.keeper, self.journal, self.planning = keeper, journal, planning
        self.codebook, self.narrator = codebook, narrator
        self.rounds: EventRounds | None = None
        if settings.event_rounds:  # decisions are pure and quick: rounds on event time
            fixed = settings.policy == "fixed"
            policy: Policy = FixedIntervalPolicy(0.0) if fixed else RulesPolicy()
            self.rounds = EventRounds(planning, policy, settings.round_event_s, settings.partitions)
        self._narrated_before: dict[str, int] = {}

    @classmethod
    def open(cls, settings: Settings, embedder: Any = None) -> WriterChild:
        """The child over the memory at ``settings.lancedb_uri``, a torn unit rolled back first.

        ``embedder`` defaults to MiniLM, one model for the keeper's topics (cached) and item
        texts; tests pass a small deterministic one.
        """
        uri = settings.lancedb_uri
        journal = WriteJournal(uri)
        torn = journal.recover()  # before anything reads the memory
        if torn:
            _log.warning("rolled back a unit of work a crash left open: %s", ", ".join(torn))
        embedder = MiniLMEmbedder() if embedder is None else embedder
        keeper = MemoryKeeper(open_store(uri), open_catalogue(uri), CachedEmbedder(embedder))
        narrator = _add_llm(settings, keeper)
        codebook = None
        if settings.codebook.enabled:
            codebook = WorkerCodebook(uri, keeper.catalogue, embedder, settings.codebook)
            keeper.code_topics = codebook.code_topics  # code-path beliefs, once it has codes
        planning = PlanningState(open_planner_state(uri))
        return cls(settings, keeper, journal, planning, codebook, narrator)

    # -- the calls the worker makes (each a journal unit when it writes) --

    def warm_up(self) -> None:
        """Load the embedding model before the first batch needs it (seconds of torch import)."""
        self.keeper.embed(["warm up"])

    def write(self, messages: Sequence[Consumed], now: float | None = None) -> BatchOutcome:
        """Decode, store once, absorb; run the event-time rounds that fall inside the batch."""
        at = time.time() if now is None else now
        with self.journal.unit():
            return decode_and_write(
                self.keeper, messages, at, self.limits, self.planning.observe, self.rounds,
                self._round_outcome,
            )  # fmt: skip

    def write_rows(self, rows: list[tuple[Any, ...]]) -> BatchOutcome:
        return self.write(list(map(Consumed._make, rows)))

    def write_items(self, messages: Sequence[Consumed], now: float | None = None) -> ItemsOutcome:
        """Store (tag, index) catalogue items; users waiting for them fold on at once."""
        at = time.time() if now is None else now
        with self.journal.unit():
            items, dead = split_items(list(messages), at, self.limits)
            keeper = self.keeper
            before = dict(keeper.tagging)
            stored = keeper.add_items(items)
            tagging = {
                k: v - before.get(k, 0) for k, v in keeper.tagging.items() if v > before.get(k, 0)
            }
            indexed = IndexOutcome() if self.codebook is None else self.codebook.index_items(items)
            late = keeper.resolve_late_items()
            return ItemsOutcome(stored, dead, tagging, indexed, _notices(late))

    def write_item_rows(self, rows: list[tuple[Any, ...]]) -> ItemsOutcome:
        return self.write_items(list(map(Consumed._make, rows)))

    def plan_round(self, max_users: int | None) -> PlanRound:
        with self.journal.unit():
            return self.planning.plan_round(self.keeper, max_users)

    def recover(self, partitions: list[int]) -> MaintainOutcome:
        with self.journal.unit():
            if self.rounds is not None:
                rounds = self.rounds
                return self._maintained(lambda keeper: rounds.recover(keeper, partitions))
            return self._maintained(lambda keeper: self.planning.recover(keeper, partitions))

    def close_idle(self, idle_s: float, caught_up: set[int]) -> list[RoundOutcome]:
        if self.rounds is None:
            return []
        with self.journal.unit():
            ran = self.rounds.close_idle(self.keeper, idle_s, caught_up)
            return [self._round_outcome(r) for r in ran]

    def run_planned(self, requests: list[Request], deferred: list[Deferred]) -> MaintainOutcome:
        with self.journal.unit():
            self.planning.defer(deferred)
            return self._maintained(lambda keeper: self.planning.run_requests(keeper, requests))

    def compact(self) -> None:
        self.keeper.compact()
        if self.codebook is not None:
            self.codebook.compact()
        self.planning.compact()

    def codebook_upkeep(self) -> UpkeepOutcome:
        return UpkeepOutcome() if self.codebook is None else self.codebook.upkeep()

    def codebook_install(self) -> UpkeepOutcome:
        return UpkeepOutcome() if self.codebook is None else self.codebook.install_fits()

    # -- reports --

    def _round_outcome(self, r: RoundResult) -> RoundOutcome:
        """A round as the worker's main process publishes and counts it."""
        m = r.result
        maintained = self._outcome(m, r.seconds)
        return RoundOutcome(r.plans, r.ran, maintained, r.idle)

    def _maintained(self, run: Callable[[MemoryKeeper], MaintainResult]) -> MaintainOutcome:
        """Run a maintenance pass and report it with the narratives it wrote."""
        started = time.perf_counter()
        result = run(self.keeper)
        return self._outcome(result, time.perf_counter() - started)

    def _outcome(self, m: MaintainResult, seconds: float) -> MaintainOutcome:
        narratives = dict(self.narrator.outcomes) if self.narrator is not None else {}
        scheduled = None if self.rounds is None else self.rounds.planning.timed_ops
        return MaintainOutcome(
            m.users, m.changed_users, self.keeper.pending_users, seconds, _notices(m),
            self._narrated(narratives), dict(m.ops), scheduled,
        )  # fmt: skip

    def _narrated(self, now: dict[str, int]) -> dict[str, int]:
        """Narratives written since the last report, by source."""
        before = self._narrated_before
        out = {k: v - before.get(k, 0) for k, v in now.items() if v > before.get(k, 0)}
        before.update(now)
        return out


def _add_llm(settings: Settings, keeper: MemoryKeeper) -> Any:
    """Give the keeper the LLM narrator and item tagger when configured (one shared model)."""
    if settings.narrator != "llm" and settings.extractor != "llm":
        return None
    from planner.budget import Budget
    from planner.narrator import LazyLocalLLM, LLMNarrator
    from planner.tagger import DEFAULT_GENRES, LLMItemTagger

    cache = settings.llm_cache_dir
    backend = LazyLocalLLM(None if cache is None else Path(cache))
    narrator = None
    if settings.narrator == "llm":
        narrator = LLMNarrator(backend, Budget(settings.narrator_calls_per_min, 10**9))
        keeper.narrate = cast(Narrator, narrator)
    if settings.extractor == "llm":
        genres = settings.extractor_genres or DEFAULT_GENRES
        tagger = LLMItemTagger(backend, Budget(settings.extractor_calls_per_min, 10**9), genres)
        keeper.tagger, keeper.tagger_source = tagger, tagger.source
    return narrator


# -- the process: the pool's initializer opens the one child, the client calls it by name --

_child: WriterChild | None = None


def open_child(settings: Settings) -> None:
    """Pool initializer: open the child's memory once, tie its life to the worker's."""
    global _child
    settings.apply_storage()  # a spawned process: the parent's configuration is not inherited
    _child = WriterChild.open(settings)
    # Each batch allocates ~10 objects per event and keeps none: collect young
    # objects less often, and never rescan what start-up loaded (~15% per event).
    gc.freeze()
    gc.set_threshold(50_000, 50, 100)
    parent = os.getppid()
    threading.Thread(target=_exit_with_parent, args=(parent,), daemon=True).start()


def run_in_child(method: str, *args: Any) -> Any:
    """Call one of the child's methods in the writer process (picklable: a name and args)."""
    assert _child is not None, "writer process not initialised"
    return getattr(_child, method)(*args)


def _exit_with_parent(parent: int) -> None:
    """A worker killed with SIGKILL (or os._exit) cannot stop us: notice and go."""
    while os.getppid() == parent:
        time.sleep(0.5)
    os._exit(0)
