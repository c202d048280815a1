"""The ranker read API: a user's memory and the beliefs that match a query, from a cache.

Rankers read the same users again and again between their changes, so each
user's memory is kept in an LRU cache under the version of the last change
notice heard for them, and dropped when a higher version is heard. A load
is stamped with the version heard *before* it started, so a notice that
arrives while it runs still makes the next read load again. The lock guards
only the dictionaries, never a LanceDB read or an embedding call.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence

import numpy as np
import numpy.typing as npt

from memory_store._reader_entry import Entry, build_entry
from memory_store.candidates import CandidateSource, CodebookUnavailableError, user_candidates
from memory_store.change_notice import ChangeNotice
from memory_store.lance.catalogue import ItemCatalogue
from memory_store.operations.extraction import Embedder, embed_all
from memory_store.operations.params import LifecycleParams
from memory_store.reader_views import (
    NO_VERSION,
    ChunkView,
    ProfileView,
    ReaderStats,
    ScoredChunk,
    UnknownItemError,
    UserMemoryView,
    Vector,
    check_k,
    item_text,
    unit_vector,
)
from memory_store.store import MemoryStore, UserKey
from memory_store.tiers import UserSnapshot

__all__ = ["MemoryReader", "ReaderStats", "ScoredChunk", "UnknownItemError", "UserMemoryView"]


class MemoryReader:
    """Cached, tenant-scoped reads of user memory for rankers; safe to share between threads."""

    def __init__(
        self,
        store: MemoryStore,
        catalogue: ItemCatalogue | None,
        embed: Embedder,
        cache_users: int = 100_000,
        event_limit: int = 50,
        clock: Callable[[], float] = time.time,
        *,
        params: LifecycleParams | None = None,
        dimension: int | None = None,
        query_cache: int = 1024,
        decay_in_event_time: bool = False,
        codebook: CandidateSource | None = None,
    ) -> None:
        """``decay_in_event_time``: decay strengths to the user's newest event rather than the
        clock, for memories built from a replayed history (MovieLens is from the 1990s)."""
        if cache_users < 0 or event_limit < 0 or query_cache < 0:
            raise ValueError("cache_users, event_limit and query_cache must be >= 0")
        self._store, self._catalogue, self._embed = store, catalogue, embed
        self._cache_users, self._event_limit, self._clock = cache_users, event_limit, clock
        self._params = params or LifecycleParams()
        self._event_time, self._codebook = decay_in_event_time, codebook
        self._dim = dimension
        self._lock = threading.Lock()
        self._entries: OrderedDict[UserKey, Entry] = OrderedDict()
        # Versions heard per user, bounded: forgetting one only costs a needless reload.
        self._heard: OrderedDict[UserKey, int] = OrderedDict()
        self._heard_limit = cache_users + 10_000
        self._queries: OrderedDict[str, Vector] = OrderedDict()
        self._query_cache = query_cache
        self._hits = self._misses = self._invalidations = 0
        self._query_hits = self._query_misses = 0

    def get_user_memory(
        self, tenant: str, user_id: str, k: int = 10, as_of: float | None = None
    ) -> UserMemoryView:
        """Profile, the ``k`` strongest chunks decayed to now (ties: chunk id), newest events.

        ``as_of``: the memory as it stood at that event time instead, decayed to it.
        """
        check_k(k)
        if as_of is not None:
            return self.get_user_memories_as_of(tenant, [(user_id, as_of)], k)[0]
        return self._view(tenant, user_id, self._entry((tenant, user_id)), k)

    def get_user_memories_as_of(
        self, tenant: str, reads: Sequence[tuple[str, float]], k: int = 10
    ) -> list[UserMemoryView]:
        """Each (user, t), in order: the memory as it stood at event time ``t``, decayed to ``t``.

        For training sets and evaluations: what a ranker would have read then, with no
        later event, round or forgetting in it. One store read for all; never cached.
        """
        check_k(k)
        entries = self._entries_as_of(tenant, reads)
        return [
            self._view(tenant, u, e, k, now=t) for (u, t), e in zip(reads, entries, strict=True)
        ]

    def get_user_memories(
        self, tenant: str, user_ids: Sequence[str], k: int = 10
    ) -> dict[str, UserMemoryView]:
        """``get_user_memory`` for many users: one store read for all not cached (batch rankers)."""
        check_k(k)
        entries = self._entries_for([(tenant, u) for u in user_ids])
        return {u: self._view(tenant, u, e, k) for (_, u), e in entries.items()}

    def cached_user_memory(self, tenant: str, user_id: str, k: int = 10) -> UserMemoryView | None:
        """``get_user_memory`` if the user's memory is cached and current, else None (no I/O).

        Lets an event loop answer hits in place and send only misses to a thread.
        """
        check_k(k)
        entry = self._fresh_entry((tenant, user_id))
        return None if entry is None else self._view(tenant, user_id, entry, k)

    def _view(
        self, tenant: str, user_id: str, entry: Entry, k: int, now: float | None = None
    ) -> UserMemoryView:
        decayed = self._decayed(entry, now)
        order = np.argsort(-decayed, kind="stable")[:k]
        return UserMemoryView(
            tenant=tenant,
            user_id=user_id,
            version=entry.version,
            profile=None if entry.profile is None else ProfileView.of(entry.profile),
            chunks=tuple(ChunkView.of(entry.chunks[i], float(decayed[i])) for i in order),
            chunk_count=len(entry.chunks),
            events=entry.events,
        )

    def retrieve(
        self,
        tenant: str,
        user_id: str,
        query: str | Sequence[float] | None = None,
        item_ids: Sequence[str] | None = None,
        k: int = 10,
        as_of: float | None = None,
    ) -> list[ScoredChunk]:
        """The ``k`` chunks best matching a text, a vector or items: cosine x decayed strength.

        Exactly one of ``query`` (text or vector) and ``item_ids`` must be given;
        ValueError (UnknownItemError for unknown items) says what is wrong. ``as_of``:
        among the chunks the user had at that event time, decayed to it.
        """
        check_k(k)
        if (query is None) == (item_ids is None):
            raise ValueError("give exactly one of query (text or embedding) or item_ids")
        if isinstance(query, str):
            if not query.strip():
                raise ValueError("query text must not be empty")
            vector = self._embed_texts([query])[0]
        elif query is not None:
            raw = np.asarray(query, dtype=np.float64)
            if raw.shape == (self._dimension(),) and not raw.any():
                return []  # the zero vector points nowhere: nothing matches it
            vector = unit_vector(raw, self._dimension(), "query embedding")
        else:
            vector = self._items_vector(tenant, () if item_ids is None else item_ids)
        if as_of is None:
            entry = self._entry((tenant, user_id))
        else:
            entry = self._entries_as_of(tenant, [(user_id, as_of)])[0]
        if not entry.chunks or k == 0:
            return []
        similarity = (entry.matrix @ vector).astype(np.float64)
        decayed = self._decayed(entry, as_of)
        scores = similarity * decayed
        order = np.argsort(-scores, kind="stable")[:k]
        return [
            ScoredChunk.of(entry.chunks[i], float(decayed[i]), float(similarity[i])) for i in order
        ]

    def candidates(
        self, tenant: str, user_id: str, k: int = 100, facets: Sequence[str] | None = None
    ) -> list[str]:
        """Item ids from the item codebook for the user's liked chunks and recent items, unseen
        ones only (``memory_store.candidates``); CodebookUnavailableError without a codebook."""
        check_k(k)
        if self._codebook is None:
            raise CodebookUnavailableError()
        entry = self._entry((tenant, user_id))
        memory = (entry.chunks, entry.matrix, entry.events)
        return user_candidates(self._codebook, tenant, memory, self._decayed(entry), k, facets)

    def invalidate(self, notice: ChangeNotice) -> None:
        """Remember the highest version heard for the user; drop a cached entry below it."""
        key = (notice.tenant, notice.user_id)
        with self._lock:
            self._heard[key] = max(notice.version, self._heard.get(key, NO_VERSION))
            self._heard.move_to_end(key)
            while len(self._heard) > self._heard_limit:
                self._heard.popitem(last=False)
            entry = self._entries.get(key)
            if entry is not None and entry.version < notice.version:
                del self._entries[key]
                self._invalidations += 1

    def clear(self) -> None:
        """Drop every cached user: loads before the change feed was positioned may be stale."""
        with self._lock:
            self._entries.clear()

    def stats(self) -> ReaderStats:
        with self._lock:
            return ReaderStats(
                self._hits, self._misses, self._invalidations, len(self._entries),
                self._query_hits, self._query_misses,
            )  # fmt: skip

    def _fresh_entry(self, key: UserKey) -> Entry | None:
        """The cached entry if no newer change was heard since it was loaded (counts a hit)."""
        with self._lock:
            cached = self._entries.get(key)
            if cached is not None and cached.version >= self._heard.get(key, NO_VERSION):
                self._entries.move_to_end(key)
                self._hits += 1
                return cached
            return None

    def _entry(self, key: UserKey) -> Entry:
        return self._entries_for([key])[key]

    def _entries_for(self, keys: Sequence[UserKey]) -> dict[UserKey, Entry]:
        """Cached entries where current; the rest in one store read, cached as they are built."""
        out: dict[UserKey, Entry] = {}
        heard: dict[UserKey, int] = {}
        for key in dict.fromkeys(keys):
            cached = self._fresh_entry(key)
            if cached is not None:
                out[key] = cached
                continue
            with self._lock:
                heard[key] = self._heard.get(key, NO_VERSION)
                self._misses += 1
        snapshots = self._store.read_snapshots(list(heard), self._event_limit) if heard else {}
        for key, version in heard.items():
            entry = out[key] = build_entry(
                key,
                snapshots.get(key) or UserSnapshot(*key),
                version,
                self._dimension(),
                self._event_limit,
            )
            with self._lock:
                current = self._entries.get(key)
                fresh = self._heard.get(key, NO_VERSION) <= version
                if self._cache_users and fresh and (current is None or current.version <= version):
                    self._entries[key] = entry
                    self._entries.move_to_end(key)
                    while len(self._entries) > self._cache_users:
                        self._entries.popitem(last=False)
        return out

    def _entries_as_of(self, tenant: str, reads: Sequence[tuple[str, float]]) -> list[Entry]:
        snapshots = self._store.read_snapshots_as_of(
            [((tenant, u), float(t)) for u, t in reads], self._event_limit
        )
        dim = self._dimension()
        return [
            build_entry((tenant, u), snap, NO_VERSION, dim, self._event_limit)
            for (u, _), snap in zip(reads, snapshots, strict=True)
        ]

    def _decayed(self, entry: Entry, now: float | None = None) -> npt.NDArray[np.float64]:
        """Each chunk's strength decayed from its last evidence to now (as effective_strength).

        ``now``: an as-of read's time; else the user's newest event or the clock. On the
        user's clock (``decay_clock``, see ``decay_time``) it stops at their newest activity:
        the newest event read (an ``event_limit`` of 0 reads none) or chunk evidence.
        """
        if now is None:
            now = entry.event_now if self._event_time else self._clock()
        if self._params.decay_clock == "user":
            now = min(now, entry.event_now)
        elapsed = now - entry.last_seen
        factor = np.power(0.5, np.maximum(elapsed, 0.0) / self._params.half_life)
        return np.asarray(entry.strength * np.where(entry.decays, factor, 1.0), dtype=np.float64)

    @property
    def dimension(self) -> int:
        """The length of the embeddings this reader's memory holds (and queries must have)."""
        return self._dimension()

    def _dimension(self) -> int:
        if self._dim is None:
            self._dim = len(embed_all(self._embed, ["dimension probe"])[0])
        return self._dim

    def _embed_texts(self, texts: Sequence[str]) -> list[Vector]:
        """Unit vectors for ``texts``, through a small LRU (rankers repeat their queries)."""
        found: dict[str, Vector] = {}
        with self._lock:
            for text in texts:
                if text in self._queries:
                    self._queries.move_to_end(text)
                    found[text] = self._queries[text]
            self._query_hits += len(found)
            missing = [t for t in dict.fromkeys(texts) if t not in found]
            self._query_misses += len(missing)
        dim = self._dimension()
        for text, vec in zip(missing, embed_all(self._embed, missing), strict=True):
            found[text] = unit_vector(vec, dim, "embedder output")
        with self._lock:
            for text in missing:
                self._queries[text] = found[text]
            while len(self._queries) > self._query_cache:
                self._queries.popitem(last=False)
        return [found[t] for t in texts]

    def _items_vector(self, tenant: str, item_ids: Sequence[str]) -> Vector:
        if isinstance(item_ids, str) or not item_ids:
            raise ValueError("item_ids must be a non-empty list of item ids")
        if self._catalogue is None:
            raise ValueError("retrieval by item ids needs an item catalogue")
        wanted = list(dict.fromkeys(item_ids))
        items = self._catalogue.read_items(tenant, wanted)
        unknown = [i for i in wanted if i not in items or items[i].tenant != tenant]
        if unknown:
            raise UnknownItemError(tenant, unknown)
        vectors = self._embed_texts([item_text(items[i]) for i in wanted])
        mean = np.mean(np.stack(vectors), axis=0)
        return unit_vector(mean, self._dimension(), "mean item embedding")
