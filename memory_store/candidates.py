"""The item codebook seen from the memory: what an item is embedded as, which pairs of items
train the collaborative facet, and which query vectors a user's memory gives.

A user queries with the embeddings of their strongest liked chunks (MiniLM, the
same space as the items' content vectors) and with the vectors of the items they
recently engaged with positively, in every facet the codebook holds. Items the
user recently interacted with are left out of their candidates. Torch is imported
only when a query is built, so a reader that serves no candidates never loads it.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

import numpy as np
import numpy.typing as npt

from memory_store.code_paths import parse_key, path_of
from memory_store.events import EventType, Interaction, Item
from memory_store.operations.extraction import Embedder, embed_all
from memory_store.reader_views import EventView
from memory_store.signals import evidence_weight
from memory_store.tiers import Polarity, PreferenceChunk

if TYPE_CHECKING:
    from torch import Tensor

    from memory_store.codebook.item2vec import ItemVectors

__all__ = [
    "COLLAB",
    "CONTENT",
    "QUERY_CHUNKS",
    "QUERY_ITEMS",
    "QUERY_PATHS",
    "CandidateSource",
    "CodebookUnavailableError",
    "UserQuery",
    "co_engaged_pairs",
    "content_text",
    "content_vectors",
    "path_candidates",
    "user_candidates",
    "user_query",
]

CONTENT = "content"  # MiniLM over title, text and attributes: chunk embeddings query it
COLLAB = "collab"  # item2vec over co-engagement: only items' own vectors query it
QUERY_CHUNKS = 5  # strongest liked chunks a user queries with
QUERY_ITEMS = 10  # most recent positively engaged items a user queries with
QUERY_PATHS = 5  # strongest liked code paths whose items lead a user's candidates


class CandidateSource(Protocol):
    """What the reader needs of an ``ItemCodebook``."""

    def facet_dims(self, tenant: str) -> dict[str, int]: ...

    def item_vectors(
        self, tenant: str, facet: str, item_ids: Sequence[str]
    ) -> dict[str, Tensor]: ...

    def members(self, tenant: str, facet: str, prefix: tuple[int, ...], n: int) -> list[str]: ...

    def candidates(
        self,
        tenant: str,
        queries: Mapping[str, Tensor],
        k: int,
        facets: Collection[str] | None = None,
        *,
        pool: int | None = None,
        beam: int | None = None,
        weights: Mapping[str, Tensor] | None = None,
        exclude: Collection[str] = (),
    ) -> list[str]: ...


class CodebookUnavailableError(RuntimeError):
    """The reader was built without an item codebook."""

    def __init__(self) -> None:
        super().__init__("candidates need an item codebook; this reader has none configured")


def content_text(item: Item) -> str:
    """``"Heat (1995). A heist... genres: Action, Crime; year: 1995"``: title, text, attributes."""
    attributes = "; ".join(
        f"{name}: {', '.join(map(str, value)) if isinstance(value, list | tuple) else value}"
        for name, value in sorted(item.attributes.items())
        if value not in (None, "", [], ())
    )
    parts = (part.strip().rstrip(".") for part in (item.title, item.text or "", attributes))
    return ". ".join(part for part in parts if part)


def content_vectors(embed: Embedder, items: Sequence[Item]) -> ItemVectors[str]:
    """The content facet's input for these items: one embedding call for all of them."""
    import torch

    from memory_store.codebook.item2vec import ItemVectors

    vectors = embed_all(embed, [content_text(item) for item in items])
    matrix = torch.tensor(vectors, dtype=torch.float32).reshape(len(items), -1)
    return ItemVectors([item.item_id for item in items], matrix)


def co_engaged_pairs(sequences: Iterable[Sequence[str]], window: int = 3) -> list[tuple[str, str]]:
    """Both orders of every two items within ``window`` positions in one user's sequence."""
    pairs: list[tuple[str, str]] = []
    for seq in sequences:
        for offset in range(1, window + 1):
            for a, b in zip(seq, seq[offset:], strict=False):
                if a != b:
                    pairs += [(a, b), (b, a)]
    return pairs


@dataclass(frozen=True)
class UserQuery:
    """Query rows per facet, each row's weight, and the items to leave out."""

    vectors: dict[str, Tensor]
    weights: dict[str, Tensor]
    seen: frozenset[str]


def _event_weight(event: EventView) -> float:
    """The one reading of signals (``evidence_weight``), from an event as the reader keeps it."""
    try:
        kind = EventType(event.type)
    except ValueError:
        return 0.0
    return evidence_weight(Interaction.model_construct(type=kind, value=event.value))


def user_query(
    source: CandidateSource,
    tenant: str,
    chunks: Sequence[PreferenceChunk],
    chunk_vectors: npt.NDArray[np.float32],
    strengths: npt.NDArray[np.float64],
    events: Sequence[EventView],
    facets: Collection[str] | None = None,
) -> UserQuery:
    """Strongest liked chunks (weight: strength / the strongest's) query the content facet;
    recent positive items (weight: their evidence) query every facet they are indexed in."""
    import torch

    dims = source.facet_dims(tenant)
    wanted = [f for f in dims if facets is None or f in facets]
    rows: dict[str, list[Tensor]] = {f: [] for f in wanted}
    weights: dict[str, list[float]] = {f: [] for f in wanted}
    order = np.argsort(-strengths, kind="stable")
    liked = [
        int(i)
        for i in order
        if chunks[i].polarity is Polarity.LIKE
        and strengths[i] > 0
        and np.any(chunk_vectors[i])  # a chunk of another embedding model is all zeros
    ][:QUERY_CHUNKS]
    if CONTENT in rows and liked and chunk_vectors.shape[1] == dims[CONTENT]:
        top = float(strengths[liked[0]])
        rows[CONTENT] += [torch.from_numpy(chunk_vectors[i].copy()) for i in liked]
        weights[CONTENT] += [float(strengths[i]) / top for i in liked]
    recent: dict[str, float] = {}
    for event in events:  # newest first
        weight = _event_weight(event)
        if weight > 0 and event.item_id not in recent and len(recent) < QUERY_ITEMS:
            recent[event.item_id] = weight
    for facet in wanted:
        found = source.item_vectors(tenant, facet, list(recent))
        rows[facet] += [found[i] for i in recent if i in found]
        weights[facet] += [w for i, w in recent.items() if i in found]
    return UserQuery(
        {f: torch.stack(r).to(torch.float32) for f, r in rows.items() if r},
        {f: torch.tensor(w, dtype=torch.float32) for f, w in weights.items() if w},
        frozenset(event.item_id for event in events),
    )


def path_candidates(
    source: CandidateSource,
    tenant: str,
    chunks: Sequence[PreferenceChunk],
    strengths: npt.NDArray[np.float64],
    k: int,
    exclude: Collection[str],
    facets: Collection[str] | None = None,
) -> list[str]:
    """Up to ``k`` unseen items filed under the user's strongest liked code paths (code-path
    beliefs, satisfaction or engagement: ``memory_store.code_paths``), read straight from the
    codebook's buckets: no vector search. Paths of facets the codebook lacks give nothing."""
    dims = source.facet_dims(tenant)
    paths: list[tuple[str, tuple[int, ...]]] = []
    for i in np.argsort(-strengths, kind="stable"):
        chunk = chunks[int(i)]
        key = path_of(chunk)
        parsed = None if key is None else parse_key(key)
        if (parsed is None or chunk.polarity is not Polarity.LIKE or strengths[i] <= 0
                or parsed[0] not in dims or (facets is not None and parsed[0] not in facets)
                or parsed in paths):  # fmt: skip
            continue
        paths.append(parsed)
        if len(paths) == QUERY_PATHS:
            break
    found: dict[str, None] = {}
    for facet, prefix in paths:
        for item in source.members(tenant, facet, prefix, k + len(exclude)):
            if item not in exclude:
                found[item] = None
            if len(found) >= k:
                return list(found)
    return list(found)


def user_candidates(
    source: CandidateSource,
    tenant: str,
    memory: tuple[Sequence[PreferenceChunk], npt.NDArray[np.float32], Sequence[EventView]],
    strengths: npt.NDArray[np.float64],
    k: int,
    facets: Collection[str] | None = None,
) -> list[str]:
    """Up to ``k`` item ids for a user's memory (chunks, their vectors, recent events): half
    from their strongest code paths (``path_candidates``), the rest from the codebook's
    beam over their query vectors."""
    chunks, chunk_vectors, events = memory
    query = user_query(source, tenant, chunks, chunk_vectors, strengths, events, facets)
    led = path_candidates(source, tenant, chunks, strengths, k // 2, query.seen, facets)
    rest = source.candidates(tenant, query.vectors, k, facets, weights=query.weights,
                             exclude=query.seen | set(led))  # fmt: skip
    return [*led, *rest][:k]
