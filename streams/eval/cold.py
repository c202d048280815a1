"""Cold items through the learned item index (``ItemCodebook``): real-time assign vs none.

Candidates for a cold item come from the codebook the way a ranker would get
them: the index is fitted at the cut on the content vectors of the items known
then (the same MiniLM item vectors the scorer uses), and each user queries it
with their content query q_C (chunks by signed strength plus the profile, see
``streams.eval.scorer``: cold items have no co-engagement yet, so content is
the only facet that can find them), the user's training items excluded. Two
copies are compared: ``realtime`` files every item first seen after the cut
with ``assign`` as it arrives (no retraining); ``rebuild_only`` does not, as an
index only rebuilt from the catalogue at the cut. A cold target is a hit when
it is among the 10 candidates (and, reported beside it, among 100: cold items are few and
content queries weak, so the wider list says whether the index offers them at all).
Popularity and SASRec have no content query, so
only the memory variants are measured this way.

The codebook lives in ``memory_store/codebook`` (another piece of work); when it
cannot be imported or fails, the caller falls back to the content scorer and
records why.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt
import torch
from rich.console import Console

if TYPE_CHECKING:
    from memory_store.codebook.tenant_state import CodebookConfig

from streams.eval.ranking import RankingMetrics, summarize
from streams.eval.scorer import ItemSpace
from streams.eval.split import TimeSplit

__all__ = ["WIDE_K", "CodebookCold", "QueryFn", "codebook_cold", "cold_by_codebook"]

QueryFn = Callable[[str], npt.NDArray[np.float64]]
"""user id -> the user's scorer query vector (dimension of the item vectors)."""

_TENANT = "eval"
_K = 10
WIDE_K = 100


@dataclass(frozen=True)
class CodebookCold:
    """Cold HR@10 per memory variant with each index, and how the index was built."""

    realtime: dict[str, RankingMetrics]
    rebuild_only: dict[str, RankingMetrics]
    items_at_cut: int
    items_assigned: int
    fit_s: float
    # Share of cold targets among the WIDE_K candidates, per variant.
    realtime_at_wide: dict[str, float] = field(default_factory=dict)
    rebuild_only_at_wide: dict[str, float] = field(default_factory=dict)


def codebook_cold(
    space: ItemSpace,
    split: TimeSplit,
    catalogue_at_cut: frozenset[str],
    queries: Mapping[str, QueryFn],
    seed: int = 0,
    config: CodebookConfig | None = None,
) -> CodebookCold:
    """Fit at the cut, assign later items into one copy, query both (see the docstring)."""
    import time

    from memory_store.codebook.item2vec import ItemVectors
    from memory_store.codebook.item_codebook import ItemCodebook
    from memory_store.codebook.tenant_state import CodebookConfig as Config

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        index = space.index
        known = [i for i in space.item_ids if i in catalogue_at_cut]
        later = [i for i in space.item_ids if i not in catalogue_at_cut]
        vectors = torch.from_numpy(space.vectors[[index[i] for i in known]].copy())
        fitted: list[ItemCodebook] = []
        started = time.perf_counter()
        for _ in range(2):  # the same fit twice: a codebook holds locks, it cannot be copied
            codebook = ItemCodebook(config or Config.sized(len(known), seed=seed))
            codebook.fit(_TENANT, {"content": ItemVectors(known, vectors)})
            fitted.append(codebook)
        fit_s = (time.perf_counter() - started) / 2
        realtime, rebuild = fitted
        for item in later:
            realtime.assign(
                _TENANT, item, {"content": torch.from_numpy(space.vectors[index[item]])}
            )
        out: dict[str, dict[str, RankingMetrics]] = {"realtime": {}, "rebuild_only": {}}
        wide: dict[str, dict[str, float]] = {"realtime": {}, "rebuild_only": {}}
        for name, query in queries.items():
            for label, codebook in (("realtime", realtime), ("rebuild_only", rebuild)):
                ranks: list[int | None] = []
                hits = 0
                for row in split.cold_targets:
                    user = str(row["user_id"])
                    u = query(user)
                    item = str(row["item_id"])
                    if np.linalg.norm(u) == 0:
                        ranks.append(None)
                        continue
                    q = {
                        "content": torch.from_numpy((u / np.linalg.norm(u)).astype(np.float32))[
                            None
                        ]
                    }
                    seen = set(split.history[user])
                    found = codebook.candidates(_TENANT, q, _K, exclude=seen)
                    ranks.append(found.index(item) if item in found else None)
                    hits += item in codebook.candidates(_TENANT, q, WIDE_K, exclude=seen)
                out[label][name] = summarize(ranks)
                wide[label][name] = hits / max(1, len(ranks))
        return CodebookCold(out["realtime"], out["rebuild_only"], len(known), len(later), fit_s,
                            wide["realtime"], wide["rebuild_only"])  # fmt: skip
    finally:
        torch.set_num_threads(threads)


def cold_by_codebook(
    space: ItemSpace,
    split: TimeSplit,
    at_cut: frozenset[str],
    queries: dict[str, QueryFn],
    seed: int,
    console: Console,
) -> tuple[CodebookCold | None, str | None]:
    """The codebook's cold figures, or why they could not be had (then: the content scorer)."""
    if not queries or not split.cold_targets:
        return None, "no memory variant or no cold target to query the codebook with"
    try:
        return codebook_cold(space, split, at_cut, queries, seed), None
    except Exception as exc:  # another piece of work, still moving: fall back, say why
        console.print(f"[yellow]item codebook unavailable, cold items by the content scorer: "
                      f"{exc!r}[/]")  # fmt: skip
        return None, repr(exc)
