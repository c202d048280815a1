"""The memory keeper: everything the single writer of a set of users does to their memory.

It stores a batch of events, absorbs them into the users' beliefs (one bulk
read and one bulk write per tier for the whole batch), remembers which users
changed so the scheduled maintenance pass visits only them, and says whose
memory changed so readers can drop their cached copies. It knows no Kafka:
the worker hands it validated events and publishes the notices it returns.
"""

from __future__ import annotations

import time
from collections import Counter, OrderedDict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

from memory_store.catalogue import ItemCatalogue
from memory_store.change_notice import ChangeNotice
from memory_store.events import Interaction, Item
from memory_store.item_tagging import ItemTagger, tag_items
from memory_store.lifecycle import MAINTENANCE_ORDER, PlannedStep, absorb, maintain, run_planned
from memory_store.operations import Embedder, LifecycleParams, Narrator
from memory_store.rows import EventRecord
from memory_store.store import MemoryStore, UserDelta, UserKey
from memory_store.tiers import Delta, Operation, UserSnapshot, apply_delta

__all__ = ["CachedEmbedder", "IngestResult", "MaintainResult", "MemoryKeeper"]

# Users a maintenance pass reads and writes at once (one bulk read/write per tier).
_MAINTAIN_SLICE = 500


class CachedEmbedder:
    """An embedder that remembers its last ``max_entries`` texts.

    Extracted topics repeat across users ("Comedy", "1990s") and so do template
    narratives, so most calls never reach the model.
    """

    def __init__(self, embed: Embedder, max_entries: int = 50_000) -> None:
        self._embed = embed
        self._max = max_entries
        self._cache: OrderedDict[str, tuple[float, ...]] = OrderedDict()
        self.calls = 0

    def dry_run(self) -> tuple[Embedder, list[str]]:
        """An embedder that only notes what it is asked (cached vectors, else empty ones).

        Running a pass with it first, then ``self(noted)`` once, turns a model call
        per user into one batched call per pass.
        """
        noted: list[str] = []

        def note(texts: Sequence[str]) -> list[tuple[float, ...]]:
            noted.extend(t for t in texts if t not in self._cache)
            return [self._cache.get(t, ()) for t in texts]

        return note, noted

    def __call__(self, texts: Sequence[str]) -> list[tuple[float, ...]]:
        missing = list(dict.fromkeys(t for t in texts if t not in self._cache))
        if missing:
            self.calls += 1
            vectors = self._embed(missing)
            if len(vectors) != len(missing):
                raise ValueError(f"embedder returned {len(vectors)} vectors for {len(missing)}")
            for text, vector in zip(missing, vectors, strict=True):
                self._cache[text] = tuple(float(x) for x in vector)
        out = []
        for text in texts:
            self._cache.move_to_end(text)
            out.append(self._cache[text])
        while len(self._cache) > self._max:
            self._cache.popitem(last=False)
        return out


@dataclass(frozen=True, slots=True)
class IngestResult:
    inserted: int
    changed_users: int
    notices: list[ChangeNotice] = field(default_factory=list)
    # Valid events per user in the batch (stored or replayed): the planner's event counts.
    per_user: dict[UserKey, int] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class MaintainResult:
    users: int
    changed_users: int
    notices: list[ChangeNotice] = field(default_factory=list)
    # Operations run, by name: consolidation and forgetting per user they ran for,
    # resynthesis per profile built (a profile that is not stale is left alone).
    ops: Counter[str] = field(default_factory=Counter)


class MemoryKeeper:
    """The single writer's lifecycle: ingest + absorb per batch, maintain on a schedule."""

    def __init__(
        self,
        store: MemoryStore,
        catalogue: ItemCatalogue,
        embed: Embedder,
        params: LifecycleParams | None = None,
        narrate: Narrator | None = None,
        clock: Callable[[], float] = time.time,
        tagger: ItemTagger | None = None,
        tagger_source: str = "tagger",
    ) -> None:
        self.store = store
        self.catalogue = catalogue
        self.embed = embed
        self.params = params or LifecycleParams()
        self.narrate = narrate
        # Genres for items that arrive without any (the LLM extractor), and what it did.
        self.tagger = tagger
        self.tagger_source = tagger_source
        self.tagging: Counter[str] = Counter()
        self._clock = clock
        self._last_version = 0
        # Users touched since the last maintenance pass, and each tenant's event-time watermark.
        self._dirty: dict[UserKey, None] = {}
        # Users with events whose item was not in the catalogue yet: maintenance re-reads them.
        self._unresolved: set[UserKey] = set()
        # Of those, the ones whose tenant got items since: worth absorbing again.
        self._recheck: set[UserKey] = set()
        self.watermarks: dict[str, float] = {}

    def _version(self) -> int:
        """A memory version: wall-clock microseconds, strictly increasing in this process."""
        self._last_version = max(self._last_version + 1, int(self._clock() * 1_000_000))
        return self._last_version

    def _notices(self, keys: Iterable[UserKey]) -> list[ChangeNotice]:
        version = self._version()
        return [ChangeNotice(t, u, version) for t, u in dict.fromkeys(keys)]

    def _items_for(self, events: Iterable[Interaction]) -> dict[str, dict[str, Item]]:
        """The catalogue entries the events refer to, per tenant (one read per tenant)."""
        wanted: dict[str, set[str]] = {}
        for ev in events:
            wanted.setdefault(ev.tenant, set()).add(ev.item_id)
        return {t: self.catalogue.read_items(t, ids) for t, ids in wanted.items()}

    def add_items(self, items: Sequence[Item]) -> int:
        """Store catalogue items, tagging those without genres first when a tagger is set."""
        tagged = tag_items(items, self.tagger, self.tagger_source)
        self.tagging.update(tagged.outcomes)
        stored = self.catalogue.write_items(tagged.items)
        tenants = {item.tenant for item in tagged.items}
        self._recheck.update(key for key in self._unresolved if key[0] in tenants)
        return stored

    def resolve_late_items(self) -> MaintainResult:
        """Absorb again the events of users whose items may have arrived after them.

        Only users with events about unknown items whose tenant got items since are
        read; those whose memory changed are touched again (the planner looks at them).
        """
        keys = sorted(self._recheck)
        self._recheck.clear()
        result = self.run_for(keys, {key: [] for key in keys}, None)
        self._dirty.update(dict.fromkeys((n.tenant, n.user_id) for n in result.notices))
        return result

    def ingest(self, records: Sequence[EventRecord], plan_id: str | None = None) -> IngestResult:
        """Store events once, then absorb them into their users' beliefs."""
        written = self.store.write_events(records)
        by_user: dict[UserKey, list[Interaction]] = {}
        for record in records:
            ev = record.event
            by_user.setdefault((ev.tenant, ev.user_id), []).append(ev)
            if ev.ts > self.watermarks.get(ev.tenant, float("-inf")):
                self.watermarks[ev.tenant] = ev.ts
        if not by_user:
            return IngestResult(written.inserted, 0)
        items = self._items_for(r.event for r in records)
        self._unresolved.update(
            key
            for key, evs in by_user.items()
            if any(e.item_id not in items.get(e.tenant, {}) for e in evs)
        )
        snapshots = self.store.read_snapshots(list(by_user), event_limit=0)
        deltas = [
            UserDelta(t, u, absorb(snapshots[(t, u)], evs, items.get(t, {}), self.params,
                                   self.embed, plan_id))
            for (t, u), evs in by_user.items()
        ]  # fmt: skip
        changed = [d for d in deltas if not d.delta.is_empty]
        self.store.write_deltas(changed, plan_id)
        self._dirty.update(dict.fromkeys(by_user))
        counts = {key: len(evs) for key, evs in by_user.items()}
        return IngestResult(written.inserted, len(changed), self._notices(by_user), counts)

    @property
    def pending_users(self) -> int:
        return len(self._dirty)

    def take_dirty(self, max_users: int | None = None) -> list[UserKey]:
        """The users touched since they were last taken (oldest first), now no longer pending."""
        keys = list(self._dirty)[: max_users if max_users is not None else None]
        for key in keys:
            del self._dirty[key]
        return keys

    def now_for(self, tenant: str, snapshot: UserSnapshot) -> float:
        """Event-time "now" for a user: the tenant's watermark, else the user's newest event."""
        return self.watermarks.get(tenant, max((e.ts for e in snapshot.events), default=0.0))

    def maintain(self, max_users: int | None = None, plan_id: str | None = None) -> MaintainResult:
        """Consolidate, forget and resynthesise the users touched since the last pass.

        Users who had events about items not yet in the catalogue get all their
        stored events absorbed again first (a no-op for counted events), so items
        that arrived after their interactions still count.
        """
        return self.run_for(self.take_dirty(max_users), None, plan_id)

    def run_planned(
        self, requests: Sequence[tuple[UserKey, Sequence[PlannedStep]]]
    ) -> MaintainResult:
        """Run the maintenance steps plans chose, per user (one bulk read and write per slice)."""
        steps: dict[UserKey, list[PlannedStep]] = {}
        for key, chosen in requests:
            steps.setdefault(key, []).extend(chosen)
        return self.run_for(list(steps), steps, None)

    def run_for(
        self,
        keys: list[UserKey],
        steps: dict[UserKey, list[PlannedStep]] | None,
        plan_id: str | None,
    ) -> MaintainResult:
        """Maintain ``keys``: everything (``steps`` None, the fixed pass) or the planned steps."""
        notices: list[ChangeNotice] = []
        changed_users = 0
        ops: Counter[str] = Counter()
        for start in range(0, len(keys), _MAINTAIN_SLICE):
            part = keys[start : start + _MAINTAIN_SLICE]
            snapshots = self.store.read_snapshots(part, self.params.max_events_per_user * 2)
            events = [e for key in part if key in self._unresolved for e in snapshots[key].events]
            items = self._items_for(events)
            if isinstance(self.embed, CachedEmbedder):
                probe, noted = self.embed.dry_run()
                self._maintained(snapshots, items, probe, plan_id, steps)
                self.embed(noted)
            deltas = self._maintained(snapshots, items, self.embed, plan_id, steps)
            self.store.write_deltas(deltas, plan_id)
            self._unresolved.difference_update(
                key
                for key in part
                if all(e.item_id in items.get(key[0], {}) for e in snapshots[key].events)
            )
            changed_users += len(deltas)
            for key in part:
                chosen = MAINTENANCE_ORDER if steps is None else [step.op for step in steps[key]]
                ops.update(op.value for op in chosen if op is not Operation.RESYNTHESIS)
            ops.update(Operation.RESYNTHESIS.value for d in deltas if d.delta.profile is not None)
            notices += self._notices((d.tenant, d.user_id) for d in deltas)
        return MaintainResult(len(keys), changed_users, notices, ops)

    def _maintained(
        self,
        snapshots: dict[UserKey, UserSnapshot],
        items: dict[str, dict[str, Item]],
        embed: Embedder,
        plan_id: str | None,
        steps: dict[UserKey, list[PlannedStep]] | None,
    ) -> list[UserDelta]:
        """Each user's absorb-again + maintain delta; only the non-empty ones."""
        deltas: list[UserDelta] = []
        for (tenant, user_id), snap in snapshots.items():
            now = self.now_for(tenant, snap)
            absorbed = Delta()
            if (tenant, user_id) in self._unresolved:
                known = items.get(tenant, {})
                absorbed = absorb(snap, snap.events, known, self.params, embed, plan_id)
            current = apply_delta(snap, absorbed)
            if steps is None:
                kept = maintain(current, now, self.params, embed, self.narrate, plan_id)
            else:
                kept = run_planned(current, steps[(tenant, user_id)], now, embed, self.narrate)
            delta = Delta.merge(absorbed, kept)
            if not delta.is_empty:
                deltas.append(UserDelta(tenant, user_id, delta))
        return deltas

    def compact(self) -> None:
        self.store.compact()
        self.catalogue.compact()
