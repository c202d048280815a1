"""The scorer's collaborative inputs: item2vec on the training split, and the codebook pool.

Genre and era beliefs scored by MiniLM similarity barely separate MovieLens
films (the earlier evaluation measured every memory variant near chance), so
the reference scorer also lets the items a memory holds as evidence pull in the
items people engaged with alongside them. Those vectors are learned here, once
per run, from the training split only (``train_item2vec`` over each user's
training items in time order), and the same matrix serves every memory variant.

The candidate pool is what a ranker gets from ``ItemCodebook.candidates``: a
codebook fitted at the cut on the collaborative facet of the items known then,
queried with the user's collaborative query q_B (``streams.eval.scorer``), the
user's training items excluded. Candidates are cached per (variant, user), since
the ablations re-score the same memories.
"""

from __future__ import annotations

import time
from collections.abc import Collection, Sequence

import numpy as np
import numpy.typing as npt
import torch

from memory_store.codebook.item2vec import Item2VecConfig, ItemVectors, train_item2vec
from memory_store.codebook.item_codebook import ItemCodebook
from memory_store.codebook.tenant_state import CodebookConfig
from streams.eval.scorer import ItemSpace
from streams.eval.split import TimeSplit

__all__ = ["CollabPool", "collab_matrix", "popularity_counts"]

_TENANT = "eval-collab"
FACET = "collab"


def collab_matrix(
    split: TimeSplit, space: ItemSpace, config: Item2VecConfig | None = None
) -> npt.NDArray[np.float32]:
    """One item2vec row per item of ``space``, from training co-engagement (zero: none)."""
    cfg = config or Item2VecConfig(dim=32, window=5, epochs=5)
    sequences = [items for items in split.history.values() if len(items) >= 2]
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        learned = train_item2vec(sequences, cfg)
    finally:
        torch.set_num_threads(threads)
    out = np.zeros((len(space.item_ids), cfg.dim), dtype=np.float32)
    index = space.index
    for row, item in enumerate(learned.items):
        n = index.get(item)
        if n is not None:
            out[n] = learned.vectors[row].numpy()
    return out


def popularity_counts(split: TimeSplit, space: ItemSpace) -> npt.NDArray[np.float64]:
    """Training interactions per item of ``space``."""
    index = space.index
    counts = np.zeros(len(space.item_ids), dtype=np.float64)
    for row in split.train:
        n = index.get(str(row["item_id"]))
        if n is not None:
            counts[n] += 1.0
    return counts


class CollabPool:
    """``ItemCodebook`` candidates on the collaborative facet (see the module docstring)."""

    def __init__(
        self,
        space: ItemSpace,
        collab: npt.NDArray[np.float32],
        known: Collection[str],
        seed: int = 0,
        config: CodebookConfig | None = None,
    ) -> None:
        index = space.index
        items = [i for i in space.item_ids if i in known and np.any(collab[index[i]])]
        if not items:
            raise ValueError("no known item has a collaborative vector")
        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        started = time.perf_counter()
        try:
            self.codebook = ItemCodebook(config or CodebookConfig.sized(len(items), seed=seed))
            vectors = torch.from_numpy(collab[[index[i] for i in items]].copy())
            self.codebook.fit(_TENANT, {FACET: ItemVectors(items, vectors)})
        finally:
            torch.set_num_threads(threads)
        self.fit_s = time.perf_counter() - started
        self.items = len(items)
        self._cache: dict[tuple[str, str], list[str]] = {}

    def candidates(
        self, key: tuple[str, str], query: npt.NDArray[np.float64], k: int, exclude: Sequence[str]
    ) -> list[str]:
        """Up to ``k`` item ids for ``query`` (cached under ``key``); none for a zero query."""
        if k <= 0:
            return []
        cached = self._cache.get(key)
        if cached is None:
            cached = []
            if np.linalg.norm(query) > 0:
                q = torch.from_numpy(query.astype(np.float32))[None]
                cached = self.codebook.candidates(_TENANT, {FACET: q}, k, exclude=set(exclude))
            self._cache[key] = cached
        return cached
