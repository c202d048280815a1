"""The reference memory-based scorer: one formula, applied identically to every memory variant.

Inputs are only what the ranker API gives a memory: preference chunks (an
embedding, a strength, a polarity), the profile embedding, the recent events of
the event tier (newest first), and candidates from the item codebook. The tiered
variants fill them from ``MemoryReader``; ``flat`` (every training event) and
``recent`` (the last 10) have no chunks or profile, so each of their events is a
pseudo-chunk (its item's vector, signed by ``evidence_weight``: a rating r reads as
(r - 3) / 2) and their events are the evidence. Nothing else differs.

For user u and catalogue item i (all vectors unit length):

    content(i) = cos(x_i, q_C),   q_C = sum_c sign_c * strength_c * e_c + w_p * profile
    collab(i)  = cos(v_i, q_B),   q_B = sum_k 0.5^(k / H) * (1 + w_k / 2) * v_{item_k}
    pop(i)     = log(1 + training interactions of i)
    ease(i)    = sum_k<20 0.5^(k / 2) * B[item_k, i]     (item-item EASE, ``streams.eval.ease``)
    score(i)   = a * z(content)(i) + b * z(collab)(i) + g * z(pop)(i) + e * z(ease)(i)
               + P * [i among the codebook's top-``pool`` candidates for (q_C, q_B)]

x_i is the MiniLM vector of the item's text (title, year, genres: what the chunks
are embedded against); v_i its collaborative vector (item2vec on the training
split's co-engagement, ``streams.eval.collab``; zero for an item nobody engaged
with in training). k = 0 is the newest event: recency is counted in events, not
seconds, because MovieLens users rate dozens of films in one sitting, and the
half-life H (events) makes the last few dominate. Every event pulls its item's
co-engaged neighbours, a 5-star three times as hard as a 1-star (1 + w/2), since
what a user rates next is co-watched whatever they thought of it; polarity acts
through the chunks. z(.) standardises a component over the catalogue for this
user (mean 0, std 1; a constant component is all zero), so a, b, g weigh
components of comparable spread for every user and variant. P exceeds the spread
of the rest, so the codebook's candidates rank first (as a ranker that retrieves
then re-ranks would show them) and all other items follow, in score order.
Popularity (g) is one shared term, equal for every memory variant. The weights
a and g are chosen once per run on validation interactions drawn from the
training split (``streams.eval.tuning``), never on the held-out targets, and
then used for every memory variant; b = 1, w_p = 1, H = 5 and the pool of 100
are fixed (``ScorerConfig``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from memory_store.events import Interaction, Item
from memory_store.operations.extraction import Embedder
from memory_store.reader_views import item_text
from memory_store.signals import evidence_weight

__all__ = [
    "ItemSpace",
    "MemoryVectors",
    "ReferenceScorer",
    "ScorerConfig",
    "eval_item_text",
    "event_memory",
    "memory_scores",
    "standardised",
    "unit_rows",
]

Matrix = npt.NDArray[np.float32]
Matrix64 = npt.NDArray[np.float64]


def unit_rows(matrix: npt.ArrayLike) -> Matrix:
    """Rows scaled to unit length; all-zero rows stay zero (they then score nothing)."""
    arr = np.atleast_2d(np.asarray(matrix, dtype=np.float32))
    norms = np.linalg.norm(arr, axis=1, keepdims=True)
    out: Matrix = np.divide(arr, norms, out=np.zeros_like(arr), where=norms > 0)
    return out


def eval_item_text(row: Mapping[str, Any]) -> str:
    """The text an item is embedded as: ``item_text`` with the year after the title."""
    item = Item.model_validate(row)
    year = item.attributes.get("year")
    title = f"{item.title} ({year})" if isinstance(year, int) else item.title
    return item_text(item.model_copy(update={"title": title}))


@dataclass(frozen=True)
class ItemSpace:
    """The catalogue as rows of unit item vectors, in a fixed order."""

    item_ids: tuple[str, ...]
    vectors: Matrix

    def __post_init__(self) -> None:
        if self.vectors.shape[0] != len(self.item_ids):
            raise ValueError("one vector per item id")

    @property
    def index(self) -> dict[str, int]:
        return {item: n for n, item in enumerate(self.item_ids)}

    @staticmethod
    def embed(items: Sequence[Mapping[str, Any]], embed: Embedder) -> ItemSpace:
        """Embed every catalogue row (once per run: MiniLM does ~300 texts/s here)."""
        ids = tuple(str(r["item_id"]) for r in items)
        if len(set(ids)) != len(ids):
            raise ValueError("duplicate item ids in the catalogue")
        vectors = embed([eval_item_text(r) for r in items]) if items else []
        return ItemSpace(
            ids, unit_rows(np.asarray(vectors, dtype=np.float32).reshape(len(ids), -1))
        )


@dataclass(frozen=True)
class MemoryVectors:
    """One user's memory as the scorer reads it."""

    vectors: Matrix  # (m, d) unit rows: chunk embeddings or item vectors
    weights: npt.NDArray[np.float64]  # (m,) sign * strength
    profile: Matrix | None = None  # (d,) unit profile embedding
    # The event tier as evidence, newest first: (item id, signed evidence_weight).
    evidence: tuple[tuple[str, float], ...] = ()
    # Each chunk's belief family (its facet: "genre", "era"), when the rows are chunks.
    facets: tuple[str, ...] = ()

    @staticmethod
    def empty(dim: int, evidence: tuple[tuple[str, float], ...] = ()) -> MemoryVectors:
        return MemoryVectors(np.zeros((0, dim), np.float32), np.zeros(0), None, evidence)

    def keep_facets(self, families: Iterable[str], profile: bool) -> MemoryVectors:
        """The memory with only the chunks of ``families`` (and the profile, or not)."""
        kept = set(families)
        rows = [n for n, facet in enumerate(self.facets) if facet in kept]
        return MemoryVectors(self.vectors[rows], self.weights[rows],
                             self.profile if profile else None, self.evidence,
                             tuple(self.facets[n] for n in rows))  # fmt: skip

    def query(self, profile_weight: float) -> npt.NDArray[np.float64]:
        """The one vector whose dot product with an item vector is the item's score."""
        dim = self.vectors.shape[1]
        q = self.weights.astype(np.float64) @ self.vectors.astype(np.float64)
        q = np.asarray(q, dtype=np.float64).reshape(dim)
        if self.profile is not None and profile_weight:
            q = q + profile_weight * self.profile.astype(np.float64)
        return q


def memory_scores(
    space: ItemSpace, memory: MemoryVectors, profile_weight: float
) -> npt.NDArray[np.float64]:
    """The content component's raw score, sum_c sign_c * strength_c * cos(item, c) + w *
    cos(item, profile), for every item of ``space`` (unit chunk vectors)."""
    return np.asarray(space.vectors.astype(np.float64) @ memory.query(profile_weight))


def event_memory(
    events: Sequence[Mapping[str, Any]], space: ItemSpace, index: Mapping[str, int] | None = None
) -> MemoryVectors:
    """Raw events (oldest first) as pseudo-chunks, and as evidence newest first.

    A pseudo-chunk is the item's vector signed by ``evidence_weight``; events
    whose item is not in ``space`` are left out of both, and events of weight 0
    (a 3-star rating) make no pseudo-chunk (they teach the tiered memory no
    belief either) but remain evidence of engagement.
    """
    lookup = space.index if index is None else index
    rows: list[int] = []
    weights: list[float] = []
    evidence: list[tuple[str, float]] = []
    for row in events:
        item = str(row["item_id"])
        n = lookup.get(item)
        if n is None:
            continue
        weight = evidence_weight(Interaction.model_validate(row))
        evidence.append((item, weight))
        if weight:
            rows.append(n)
            weights.append(weight)
    newest_first = tuple(reversed(evidence))
    if not rows:
        return MemoryVectors.empty(space.vectors.shape[1], newest_first)
    vectors = space.vectors[rows]
    return MemoryVectors(vectors, np.asarray(weights, dtype=np.float64), None, newest_first)


def standardised(values: npt.ArrayLike) -> npt.NDArray[np.float64]:
    """``z(.)``: mean 0, standard deviation 1 over the catalogue; constant -> all zero."""
    x = np.asarray(values, dtype=np.float64)
    std = float(x.std())
    return np.zeros_like(x) if std <= 1e-12 else (x - x.mean()) / std


@dataclass(frozen=True)
class ScorerConfig:
    """The formula's constants (module docstring); ``run_eval`` picks a and g on validation."""

    profile_weight: float = 1.0  # w_p
    content: float = 1.0  # a
    collab: float = 1.0  # b
    popularity: float = 0.5  # g
    ease: float = 1.0  # e: the item-item EASE term, when the scorer has one
    half_life_events: float = 5.0  # H
    pool: int = 100  # codebook candidates (for the with_codebook_pool ablation); 0: none
    # Rank the codebook's candidates first in the headline figures. Off: on ml-100k the pool
    # cost every memory variant ~0.007 NDCG@10 once EASE read the events (its ablation).
    pool_first: bool = False


class ReferenceScorer:
    """``score(i)`` for every catalogue item, from one user's ``MemoryVectors``."""

    def __init__(
        self,
        space: ItemSpace,
        collab: npt.ArrayLike,
        popularity: npt.ArrayLike,
        config: ScorerConfig | None = None,
        ease: Callable[[Sequence[str]], npt.NDArray[np.float64]] | None = None,
    ) -> None:
        """``collab``: one collaborative row per item of ``space`` (zero: none);
        ``popularity``: training interaction counts per item of ``space``; ``ease``: item
        scores from the evidence items, newest first (``streams.eval.ease``), if any."""
        self.space, self.config = space, config or ScorerConfig()
        self.ease = ease
        self.collab = unit_rows(collab).astype(np.float64)
        counts = np.asarray(popularity, dtype=np.float64)
        if self.collab.shape[0] != len(space.item_ids) or counts.shape != (len(space.item_ids),):
            raise ValueError("one collaborative row and one count per item of the space")
        self._content = space.vectors.astype(np.float64)
        self._index = space.index
        self._pop = standardised(np.log1p(counts))

    def content_query(self, memory: MemoryVectors) -> npt.NDArray[np.float64]:
        """q_C: chunks by signed strength plus the weighted profile."""
        return memory.query(self.config.profile_weight)

    def collab_query(self, memory: MemoryVectors) -> npt.NDArray[np.float64]:
        """q_B: the evidence items' collaborative vectors, by recency and engagement."""
        q = np.zeros(self.collab.shape[1], dtype=np.float64)
        decay = 0.5 ** (1.0 / self.config.half_life_events)
        for k, (item, weight) in enumerate(memory.evidence):
            n = self._index.get(item)
            if n is not None:
                q += decay**k * (1.0 + weight / 2.0) * self.collab[n]
        return q

    def components(self, memory: MemoryVectors) -> dict[str, npt.NDArray[np.float64]]:
        """The standardised components (three, four with EASE), before weighting."""
        out = {
            "content": standardised(_cosines(self._content, self.content_query(memory))),
            "collab": standardised(_cosines(self.collab, self.collab_query(memory))),
            "popularity": self._pop,
        }
        if self.ease is not None:
            out["ease"] = standardised(self.ease([item for item, _ in memory.evidence]))
        return out

    def scores(
        self,
        memory: MemoryVectors,
        pool: Iterable[str] = (),
        weights: Mapping[str, float] | None = None,
    ) -> npt.NDArray[np.float64]:
        """The score of every item; ``pool``: the codebook candidates, ranked first.

        ``weights`` overrides (a, b, g) by component name, for ablations.
        """
        cfg = self.config
        chosen = {"content": cfg.content, "collab": cfg.collab, "popularity": cfg.popularity,
                  "ease": cfg.ease}  # fmt: skip
        chosen |= dict(weights or {})
        total = np.zeros(len(self.space.item_ids), dtype=np.float64)
        for name, values in self.components(memory).items():
            if chosen[name]:
                total += chosen[name] * values
        rows = [self._index[i] for i in pool if i in self._index]
        if rows:
            total[rows] += float(total.max() - total.min()) + 1.0
        return total


def _cosines(matrix: npt.NDArray[np.float64], query: npt.NDArray[np.float64]) -> Matrix64:
    """cos(row, query) for unit rows; zero for a zero query."""
    norm = float(np.linalg.norm(query))
    if norm == 0.0:
        return np.zeros(matrix.shape[0], dtype=np.float64)
    return np.asarray(matrix @ (query / norm), dtype=np.float64)
