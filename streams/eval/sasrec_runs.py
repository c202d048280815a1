"""The evaluation's SASRec rankers wired to its runs: what they read, and what they report.

At test time a SASRec ranker reads the user's newest 200 events from the first
tiered run's event tier, as of the target, through ``MemoryReader`` (without a
tiered run: the training split, and the JSON says so); the memory-reading one
reads that run's memory tokens. Its figures with parts of the memory withheld
at test time (no retraining) show what the trained model draws on.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from memory_store.embedding import DIMENSION
from streams.eval.memory_read import MemoryTokens, read_event_sequences, read_memory_tokens
from streams.eval.pipeline import TieredRun
from streams.eval.sasrec import SASRecConfig
from streams.eval.sasrec_variants import (
    MEMORY_CHUNKS,
    SASREC_VARIANTS,
    MemoryAt,
    Served,
    sasrec_variant,
)
from streams.eval.scorer import ItemSpace
from streams.eval.split import TimeSplit
from streams.eval.variants import ScoreFn, rank_variant

__all__ = ["SasrecRunner"]

Status = Callable[[str, float | None, float | None], None]


@dataclass
class SasrecRunner:
    """Runs the SASRec variants of one evaluation; reads the event tier once for all."""

    split: TimeSplit
    space: ItemSpace
    tenant: str
    config: SASRecConfig
    cache_dir: Path
    status: Status
    _served: tuple[Served, str] | None = field(default=None, init=False)
    # Variants warmed while the workers replayed: whether their model came from the cache.
    _warmed: dict[str, bool] = field(default_factory=dict, init=False)

    def run(
        self, name: str, runs: Mapping[str, TieredRun]
    ) -> tuple[ScoreFn, dict[str, Any], float]:
        """(scores, details, batch inference seconds) of variant ``name``."""
        if self._served is None:
            self.status(f"{name}: reading the event tier", None, None)
            self._served = self._served_events(runs)
        source = next(iter(runs), None)
        memory_at = None if source is None else self._memory_reader(runs[source])

        trained = sasrec_variant(name, self.split, self.space.index, self._served[0], memory_at,
                                 self.cache_dir, self.config, self._on_epoch(name))  # fmt: skip
        extra = trained.details | {"events_from": self._served[1]}
        if name in self._warmed:  # trained (or loaded) by ``warm``, beside the workers
            extra["loaded_from_cache"] = self._warmed[name]
            extra["trained_beside_the_workers"] = not self._warmed[name]
        if SASREC_VARIANTS[name][1] and source is not None:
            extra["memory_from"] = source
            extra["memory_withheld_at_test"] = {
                label: self._figures(trained.score_fn(scores))
                for label, scores in trained.ablated.items()
            }
        return trained.score_fn(), extra, trained.infer_s

    def warm(self, name: str) -> None:
        """Train (or load) a variant that reads no memory while the tiered workers still
        replay, so its training uses the cores they leave; ``run`` then loads it by hash."""
        if SASREC_VARIANTS[name][1]:
            return  # it trains on a run's memory: only once that run has ended

        history, _ = self._served_events({})
        on_epoch = self._on_epoch(f"{name}, beside the workers")
        warmed = sasrec_variant(name, self.split, self.space.index, history, None,
                                self.cache_dir, self.config, on_epoch)  # fmt: skip
        self._warmed[name] = bool(warmed.details["loaded_from_cache"])

    def _on_epoch(self, label: str) -> Callable[[int, float, float], None]:
        def epoch_done(epoch: int, loss: float, validation: float) -> None:
            self.status(f"{label}: epochs (loss {loss:.3f}, validation {validation:.4f})",
                        epoch, self.config.max_epochs)  # fmt: skip

        return epoch_done

    def _figures(self, score: ScoreFn) -> dict[str, float]:
        split = self.split
        metrics = rank_variant(score, split, self.space, split.known_items).metrics
        return {"hr_at_10": metrics.hr_at_10, "ndcg_at_10": metrics.ndcg_at_10}

    def _served_events(self, runs: Mapping[str, TieredRun]) -> tuple[Served, str]:
        index, split = self.space.index, self.split
        source = next(iter(runs), None)
        if source is None:
            history = {u: [(index[i] + 1, 0.0) for i in h if i in index]
                       for u, h in split.history.items()}  # fmt: skip
            return history, "training split"
        as_of = {u: float(row["ts"]) for u, row in split.targets.items()}
        read = read_event_sequences(runs[source].lancedb_uri, self.tenant, as_of, 200, DIMENSION)
        served = {u: [(index[i] + 1, ts) for i, ts in events if i in index]
                  for u, events in read.items()}  # fmt: skip
        return served, f"event tier of {source}, read as of each target"

    def _memory_reader(self, run: TieredRun) -> MemoryAt:
        def read(reads: Sequence[tuple[str, float]]) -> list[MemoryTokens]:
            return read_memory_tokens(run.lancedb_uri, self.tenant, reads, MEMORY_CHUNKS,
                                      DIMENSION)  # fmt: skip

        return read
