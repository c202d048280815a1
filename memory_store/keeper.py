"""The memory keeper: everything the single writer of a set of users does to their memory.

It stores a batch of events, absorbs them into the users' beliefs in stream
order (one bulk read and one bulk write per tier for the whole batch),
remembers which users changed so the scheduled maintenance pass visits only
them, and says whose memory changed so readers can drop their cached copies.
A user whose fold waits for an item (see ``absorb_stream``) is folded on from
the event tier when the item arrives. It knows no Kafka:
the worker hands it validated events and publishes the notices it returns.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from memory_store.cached_embedder import CachedEmbedder
from memory_store.change_notice import ChangeNotice
from memory_store.code_paths import CodedItems, CodeTopics
from memory_store.events import Interaction, Item
from memory_store.item_tagging import ItemTagger, tag_items
from memory_store.lance.catalogue import ItemCatalogue
from memory_store.lifecycle import PlannedStep, run_planned
from memory_store.operations import Embedder, LifecycleParams, Narrator, absorb_stream
from memory_store.store import ALL_EVENTS, EventRecord, MemoryStore, UserDelta, UserKey
from memory_store.tiers import Operation, UserSnapshot

__all__ = ["CachedEmbedder", "IngestResult", "MaintainResult", "MemoryKeeper"]

# Users a maintenance pass reads and writes at once (one bulk read/write per tier).
_MAINTAIN_SLICE = 500


@dataclass(frozen=True, slots=True)
class IngestResult:
    inserted: int
    changed_users: int
    notices: list[ChangeNotice] = field(default_factory=list)
    # Valid events per user in the batch (stored or replayed): the planner's event counts.
    per_user: dict[UserKey, int] = field(default_factory=dict)
    # Per user, the stream positions of the batch's events whose stored copy is theirs (so
    # a replay can tell what it counted already), and the user's newest event time.
    positions: dict[UserKey, list[int]] = field(default_factory=dict)
    newest: dict[UserKey, float] = field(default_factory=dict)


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
        # Code-path topics of the items (the writer's item codebook), once it has one.
        self.code_topics: CodeTopics | None = None
        self._coded = CodedItems()
        self._clock = clock
        self._last_version = 0
        self._last_position = 0
        # Users touched since the last maintenance pass, each with (partition, stream position)
        # of its first event since; and each tenant's event-time watermark.
        self._dirty: dict[UserKey, tuple[int, int]] = {}
        # Users whose fold waits at this stream position for an item not in the catalogue yet.
        self._held: dict[UserKey, int] = {}
        # Of those, the ones whose tenant got items since: worth folding on.
        self._recheck: set[UserKey] = set()
        # Per partition: every event stored up to this wall-clock time was folded; and per
        # held user, (partition, a time before its waiting event was stored). See settled_marks.
        self._stored_through: dict[int, float] = {}
        self._held_since: dict[UserKey, tuple[int, float]] = {}
        self.watermarks: dict[str, float] = {}

    def _version(self) -> int:
        """A memory version: wall-clock microseconds, strictly increasing in this process."""
        self._last_version = max(self._last_version + 1, int(self._clock() * 1_000_000))
        return self._last_version

    def _notices(self, keys: Iterable[UserKey]) -> list[ChangeNotice]:
        version = self._version()
        return [ChangeNotice(t, u, version) for t, u in dict.fromkeys(keys)]

    def _items_for(self, events: Iterable[Interaction]) -> dict[str, dict[str, Item]]:
        """The catalogue entries the events refer to, per tenant (one read per tenant), with
        their code-path topics when ``code_topics`` is set."""
        wanted: dict[str, set[str]] = {}
        for ev in events:
            wanted.setdefault(ev.tenant, set()).add(ev.item_id)
        found = {t: self.catalogue.read_items(t, ids) for t, ids in wanted.items()}
        if self.code_topics is None:
            return found
        return {
            t: self._coded(items, self.code_topics(t, items.keys())) for t, items in found.items()
        }

    def add_items(self, items: Sequence[Item]) -> int:
        """Store catalogue items, tagging those without genres first when a tagger is set."""
        tagged = tag_items(items, self.tagger, self.tagger_source)
        self.tagging.update(tagged.outcomes)
        stored = self.catalogue.write_items(tagged.items)
        tenants = {item.tenant for item in tagged.items}
        self._recheck.update(key for key in self._held if key[0] in tenants)
        return stored

    @property
    def held_users(self) -> int:
        """Users whose fold waits for an item that has not arrived yet."""
        return len(self._held)

    def resolve_late_items(self, plan_id: str | None = None) -> MaintainResult:
        """Fold on, from the event tier, users whose waiting item may have arrived since.

        Only held users whose tenant got items since are read; each is folded from
        the event it waited at, in stream order, until done or the next unknown
        item. Those whose memory changed are touched (the planner looks at them).
        """
        keys = sorted(self._recheck)
        self._recheck.clear()
        notices: list[ChangeNotice] = []
        for start in range(0, len(keys), _MAINTAIN_SLICE):
            part = keys[start : start + _MAINTAIN_SLICE]
            stored = self.store.read_event_records(part)
            waiting = {
                key: [r for r in stored.get(key, []) if r.offset >= self._held[key]] for key in part
            }
            changed = self._fold(waiting, plan_id)
            notices += self._notices(changed)
            for key in changed:  # touched at the event it waited at
                self._touch(key, waiting[key][0].partition, waiting[key][0].offset)
        return MaintainResult(len(keys), len(notices), notices, Counter())

    def _touch(self, key: UserKey, partition: int, position: int) -> None:
        """Mark a user for the next maintenance round (keeping the first touch's position)."""
        if key not in self._dirty:
            self._dirty[key] = (partition, position)

    def _fold(
        self, by_user: dict[UserKey, list[EventRecord]], plan_id: str | None, since: float = 0.0
    ) -> list[UserKey]:
        """Fold each user's records in stream order; note who now waits; the users changed.

        ``since``: a wall-clock time before these records were stored (0 when unknown).

        Records fold at their offsets: a user's events share a Kafka partition.
        """
        items = self._items_for(r.event for recs in by_user.values() for r in recs)
        snapshots = self.store.read_snapshots(list(by_user), event_limit=0)
        deltas: list[UserDelta] = []
        for (tenant, user_id), recs in by_user.items():
            positions = [r.offset for r in recs]
            folded = absorb_stream(
                snapshots[(tenant, user_id)], [r.event for r in recs], items.get(tenant, {}),
                self.params, self.embed, plan_id, positions,
            )  # fmt: skip
            if folded.held_at is None:
                self._held.pop((tenant, user_id), None)
                self._held_since.pop((tenant, user_id), None)
            else:
                self._held[(tenant, user_id)] = folded.held_at
                if (tenant, user_id) not in self._held_since:
                    self._held_since[(tenant, user_id)] = (recs[0].partition, since)
            if not folded.delta.is_empty:
                as_of = _folded_through(snapshots[(tenant, user_id)], recs, folded.held_at)
                deltas.append(UserDelta(tenant, user_id, folded.delta, as_of))
        self.store.write_deltas(deltas, plan_id)
        return [(d.tenant, d.user_id) for d in deltas]

    def _next_position(self) -> int:
        """A stream position for an event not from Kafka: microseconds, strictly increasing."""
        self._last_position = max(self._last_position + 1, int(self._clock() * 1_000_000))
        return self._last_position

    def _positioned(self, records: Sequence[EventRecord]) -> list[EventRecord]:
        """Records with a stream position: their offset, or one given here if they have none."""
        return [
            r if r.offset >= 0 else EventRecord(r.event, r.partition, self._next_position())
            for r in records
        ]

    def _first_copies(self, records: list[EventRecord], inserted: int) -> list[EventRecord]:
        """The records whose stored copy is this one (a redelivery, or the first delivery).

        An event id produced again at a new offset was stored (and counted) at its first
        one, so it must not count here. Only read back when the write skipped rows.
        """
        unique = {(r.event.tenant, r.event.event_id) for r in records}
        if inserted >= len(unique):
            return records
        users = list(dict.fromkeys((r.event.tenant, r.event.user_id) for r in records))
        stored = {
            (s.event.tenant, s.event.event_id): (s.partition, s.offset)
            for recs in self.store.read_event_records(users).values()
            for s in recs
        }
        return [
            r for r in records
            if stored.get((r.event.tenant, r.event.event_id)) == (r.partition, r.offset)
        ]  # fmt: skip

    def ingest(self, records: Sequence[EventRecord], plan_id: str | None = None) -> IngestResult:
        """Store events once, then fold them into their users' beliefs in stream order."""
        positioned = self._positioned(records)
        started = time.time()  # the store stamps ingested_at with the wall clock, as here
        written = self.store.write_events(positioned)
        counts: Counter[UserKey] = Counter()
        for record in positioned:
            ev = record.event
            counts[(ev.tenant, ev.user_id)] += 1
            if ev.ts > self.watermarks.get(ev.tenant, float("-inf")):
                self.watermarks[ev.tenant] = ev.ts
        if not counts:
            return IngestResult(written.inserted, 0)
        # A user whose fold waits for an item folds these later, from the event tier.
        folding: dict[UserKey, list[EventRecord]] = {}
        positions: dict[UserKey, list[int]] = {}
        newest: dict[UserKey, float] = {}
        for record in self._first_copies(positioned, written.inserted):
            key = (record.event.tenant, record.event.user_id)
            positions.setdefault(key, []).append(record.offset)
            newest[key] = max(newest.get(key, record.event.ts), record.event.ts)
            if key not in self._held:
                folding.setdefault(key, []).append(record)
        changed = self._fold(folding, plan_id, started)
        stored = time.time()
        for partition in {r.partition for r in positioned if r.partition >= 0}:
            self._stored_through[partition] = stored
        for r in positioned:
            self._touch((r.event.tenant, r.event.user_id), r.partition, r.offset)
        return IngestResult(
            written.inserted, len(changed), self._notices(counts), dict(counts), positions, newest
        )

    def settled_marks(self) -> dict[int, float]:
        """Per partition, a stored-at time up to which every event's user is folded and taken.

        Taken with ``take_dirty`` by a maintenance round and saved once that round's
        work is done, it tells a restart which users to look at again: those with
        events stored later (``recover``). It never passes a fold still waiting.
        """
        marks = dict(self._stored_through)
        for partition, since in self._held_since.values():
            if partition in marks:
                marks[partition] = min(marks[partition], since - 1e-3)
        return marks

    def recover(
        self,
        found: dict[UserKey, int],
        plan_id: str | None = None,
        seen: Callable[[dict[UserKey, list[EventRecord]]], None] | None = None,
    ) -> MaintainResult:
        """After a restart: fold on, from the event tier, users with events stored after the
        last settled mark (from each one's smallest such offset), and mark them touched.

        ``seen`` gets each slice's stored records too (the planner counts them): one read.
        """
        keys = sorted(found)
        notices: list[ChangeNotice] = []
        for start in range(0, len(keys), _MAINTAIN_SLICE):
            part = keys[start : start + _MAINTAIN_SLICE]
            stored = self.store.read_event_records(part)
            if seen is not None:
                seen(stored)
            for records in stored.values():
                for r in records:
                    ts = r.event.ts
                    if ts > self.watermarks.get(r.event.tenant, float("-inf")):
                        self.watermarks[r.event.tenant] = ts
            again = {k: [r for r in stored.get(k, []) if r.offset >= found[k]] for k in part}
            notices += self._notices(self._fold(again, plan_id))
            for key in part:
                first = min(again[key], key=lambda r: r.offset, default=None)
                if first is not None:
                    self._touch(key, first.partition, first.offset)
                else:
                    self._touch(key, -1, found[key])
        return MaintainResult(len(keys), len(notices), notices, Counter())

    @property
    def pending_users(self) -> int:
        return len(self._dirty)

    def take_dirty(
        self, max_users: int | None = None, partition: int | None = None, before: int | None = None
    ) -> list[UserKey]:
        """The users touched since they were last taken (oldest first), now no longer pending.

        ``partition`` and ``before``: only users of that partition first touched since
        by an event at a stream position below ``before`` (an event-time round's users).
        """
        keys = [
            key
            for key, (p, position) in self._dirty.items()
            if (partition is None or p == partition) and (before is None or position < before)
        ][: max_users if max_users is not None else None]
        for key in keys:
            del self._dirty[key]
        return keys

    def now_for(self, tenant: str, snapshot: UserSnapshot) -> float:
        """Event-time "now" for a user: the tenant's watermark, else the user's newest event."""
        return self.watermarks.get(tenant, max((e.ts for e in snapshot.events), default=0.0))

    def run_planned(
        self,
        requests: Sequence[tuple[UserKey, Sequence[PlannedStep]]],
        at: float | None = None,
        read: Mapping[UserKey, UserSnapshot] | None = None,
    ) -> MaintainResult:
        """Run the maintenance steps plans chose, per user (one bulk read and write per slice).

        ``at``: the event time they run at (an event-time round's); else each tenant's watermark.
        ``read``: snapshots with every stored event, already read for some of the users.
        """
        steps: dict[UserKey, list[PlannedStep]] = {}
        for key, chosen in requests:
            steps.setdefault(key, []).extend(chosen)
        return self._run_steps(list(steps), steps, at, read)

    def _run_steps(
        self,
        keys: list[UserKey],
        steps: dict[UserKey, list[PlannedStep]],
        at: float | None,
        read: Mapping[UserKey, UserSnapshot] | None,
    ) -> MaintainResult:
        """Run each user's planned steps, a slice of users per bulk read and write.

        ``read``: snapshots with every stored event, already read (the rest are read here).
        """
        notices: list[ChangeNotice] = []
        changed_users = 0
        ops: Counter[str] = Counter()
        known = read or {}
        for start in range(0, len(keys), _MAINTAIN_SLICE):
            part = keys[start : start + _MAINTAIN_SLICE]
            # Every stored event: retention applies to all of them, however many.
            snapshots = {k: known[k] for k in part if k in known}
            missing = [k for k in part if k not in known]
            if missing:
                snapshots.update(self.store.read_snapshots(missing, ALL_EVENTS))
            snapshots = {k: snapshots[k] for k in part}  # the order of ``keys``
            if isinstance(self.embed, CachedEmbedder):
                probe, noted = self.embed.dry_run()
                self._maintained(snapshots, probe, steps, at)
                self.embed(noted)
            deltas = self._maintained(snapshots, self.embed, steps, at)
            self.store.write_deltas(deltas)
            changed_users += len(deltas)
            for key in part:
                chosen = [step.op for step in steps[key]]
                ops.update(op.value for op in chosen if op is not Operation.RESYNTHESIS)
            ops.update(Operation.RESYNTHESIS.value for d in deltas if d.delta.profile is not None)
            notices += self._notices((d.tenant, d.user_id) for d in deltas)
        return MaintainResult(len(keys), changed_users, notices, ops)

    def _maintained(
        self,
        snapshots: dict[UserKey, UserSnapshot],
        embed: Embedder,
        steps: dict[UserKey, list[PlannedStep]],
        at: float | None,
    ) -> list[UserDelta]:
        """Each user's maintenance delta; only the non-empty ones."""
        deltas: list[UserDelta] = []
        for (tenant, user_id), snap in snapshots.items():
            now = self.now_for(tenant, snap) if at is None else at
            delta = run_planned(snap, steps[(tenant, user_id)], now, embed, self.narrate)
            if not delta.is_empty:
                deltas.append(UserDelta(tenant, user_id, delta, as_of=now))
        return deltas

    def compact(self) -> None:
        self.store.compact()
        self.catalogue.compact()


def _folded_through(
    snapshot: UserSnapshot, records: Sequence[EventRecord], held_at: int | None
) -> float:
    """The event time a fold's state holds from: its newest folded event, never before the
    state it started from (its chunks' newest evidence, its profile's round)."""
    times = [r.event.ts for r in records if held_at is None or r.offset < held_at]
    times += [c.last_seen for c in snapshot.chunks]
    if snapshot.profile is not None:
        times.append(snapshot.profile.built_at)
    return max(times, default=0.0)
