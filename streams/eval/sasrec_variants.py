"""The three SASRec rankers of the evaluation, served from the memory's reads.

- ``sasrec``: the newest 200 events, the full sequential reference;
- ``sasrec_short``: the same model on the newest 50 events only;
- ``sasrec_short+memory``: ``sasrec_short`` that also reads the user's long-term
  memory (strongest chunks with signed, decayed strength, and the profile) as
  tokens, as PerSRec compresses a long history into a few tokens beside the
  recent window. The memory's value is this model's gain over ``sasrec_short``.

All train on the training split's sequences without each user's last training
event, which is the early-stopping validation target. A window's memory is read
as of just before its first event, in training, validation and test alike: the
tokens summarise what is older than the window, never an item it predicts. At
test time each model reads the user's events as the event tier returns them as
of the target (``served``), the way a deployed ranker would.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import torch

from streams.eval.memory_read import MemoryTokens
from streams.eval.ranking import ndcg_at, target_rank
from streams.eval.sasrec import MemoryBatch, SASRec, SASRecConfig
from streams.eval.sasrec_cache import trained_sasrec
from streams.eval.sasrec_train import score_sequences, training_windows
from streams.eval.split import TimeSplit
from streams.eval.variants import ScoreFn

__all__ = [
    "MEMORY_CHUNKS",
    "SASREC_VARIANTS",
    "MemoryAt",
    "SasrecRun",
    "Served",
    "sasrec_variant",
]

SASREC_VARIANTS = {"sasrec": (200, False), "sasrec_short": (50, False),
                   "sasrec_short+memory": (50, True)}  # fmt: skip
MEMORY_CHUNKS = 16
VALIDATION_USERS = 3000
# As-of reads just before a window's first event: its own events are not in the memory.
_BEFORE = 1e-3

Served = Mapping[str, Sequence[tuple[int, float]]]
"""user -> (item id 1-based, ts) oldest first: what the ranker reads at test time."""
MemoryAt = Callable[[Sequence[tuple[str, float]]], list[MemoryTokens]]
"""(user, t) pairs -> each one's memory tokens as of t."""


@dataclass(frozen=True)
class SasrecRun:
    """One SASRec variant's test scores and how it got them."""

    scores: npt.NDArray[np.float32]  # (evaluated users x items), rows in ``users`` order
    users: tuple[str, ...]
    infer_s: float
    details: dict[str, Any]
    # The memory reader's test scores with parts of its memory withheld (no retraining).
    ablated: Mapping[str, npt.NDArray[np.float32]] = field(default_factory=dict)

    def score_fn(self, scores: npt.NDArray[np.float32] | None = None) -> ScoreFn:
        """User -> scores, from ``scores`` (default: the test scores) in ``users`` order."""
        matrix = self.scores if scores is None else scores
        rows = {u: n for n, u in enumerate(self.users)}
        return lambda user: matrix[rows[user]].astype(np.float64)


def sasrec_variant(
    name: str,
    split: TimeSplit,
    index: Mapping[str, int],
    served: Served,
    memory_at: MemoryAt | None,
    cache_dir: Path | None,
    base: SASRecConfig,
    on_epoch: Callable[[int, float, float], None] | None = None,
) -> SasrecRun:
    """Train (or load) ``name`` on ``split``'s training sequences and score its targets."""
    max_len, reads_memory = SASREC_VARIANTS[name]
    if reads_memory and memory_at is None:
        raise ValueError(f"{name} reads the memory: it needs a tiered run to read it from")
    cfg = replace(base, max_len=max_len)
    timed = _training_sequences(split, index)
    users = sorted(timed)
    train = [[i for i, _ in timed[u][:-1]] for u in users]
    windows = training_windows(train, max_len)
    checked = [u for u in users if len(timed[u]) >= 2]
    checked = sorted(random.Random(base.seed).sample(checked, min(VALIDATION_USERS, len(checked))))
    position = {u: n for n, u in enumerate(users)}
    val_inputs = [train[position[u]] for u in checked]
    val_targets = [timed[u][-1][0] - 1 for u in checked]
    test_users = list(split.targets)
    test_inputs = [[i for i, _ in served.get(u, ())] for u in test_users]
    memory = val_memory = test_memory = None
    read_s = 0.0
    vocabulary: dict[str, int] = {}
    if reads_memory:
        assert memory_at is not None
        mark = time.monotonic()
        tokens = _read(memory_at, [_before(users[n], timed[users[n]], first)
                                   for n, first in windows.starts])  # fmt: skip
        vocabulary = _vocabulary(tokens)
        memory = _batch(tokens, vocabulary)
        val_reads = [_newest_window(u, timed[u][:-1], max_len) for u in checked]
        val_memory = _batch(_read(memory_at, val_reads), vocabulary)
        test_reads = [_newest_window(u, served.get(u, ()), max_len) for u in test_users]
        test_memory = _batch(_read(memory_at, test_reads), vocabulary)
        read_s = time.monotonic() - mark
    torch.manual_seed(cfg.seed)
    model = SASRec(len(index), cfg, len(vocabulary), _profile_dim(memory))

    def validate(m: SASRec) -> float:
        scores = score_sequences(m, val_inputs, val_memory)
        return _ndcg(scores, val_inputs, val_targets)

    log, cached = trained_sasrec(model, windows, validate, [val_inputs, val_targets],
                                 cache_dir, memory, on_epoch)  # fmt: skip
    mark = time.monotonic()
    scores = score_sequences(model, test_inputs, test_memory)
    infer_s = time.monotonic() - mark
    details = {
        "max_len": max_len, "dim": cfg.dim, "layers": cfg.layers, "lr": cfg.lr,
        "batch_size": cfg.batch_size, "dropout": cfg.dropout, "seed": cfg.seed,
        "epochs_run": len(log.losses), "best_epoch": log.best_epoch,
        "max_epochs": cfg.max_epochs, "patience": cfg.patience,
        "loss_first": log.losses[0], "loss_last": log.losses[-1],
        "validation_ndcg_at_10": [round(v, 5) for v in log.validation],
        "validation_users": len(checked), "train_windows": int(windows.inputs.shape[0]),
        "train_s": round(log.seconds, 2), "loaded_from_cache": cached,
    }  # fmt: skip
    if reads_memory:
        details |= {"memory_chunks": MEMORY_CHUNKS, "belief_keys": len(vocabulary),
                    "memory_read_s": round(read_s, 2)}  # fmt: skip
    ablated: dict[str, npt.NDArray[np.float32]] = {}
    if test_memory is not None:
        for label, masked in _without(test_memory, vocabulary).items():
            ablated[label] = score_sequences(model, test_inputs, masked)
    return SasrecRun(scores, tuple(test_users), infer_s, details, ablated)


def _training_sequences(
    split: TimeSplit, index: Mapping[str, int]
) -> dict[str, list[tuple[int, float]]]:
    """Every user's training events as (item id 1-based, ts), oldest first."""
    out: dict[str, list[tuple[int, float]]] = {}
    for row in split.train:
        item = index.get(str(row["item_id"]))
        if item is not None:
            out.setdefault(str(row["user_id"]), []).append((item + 1, float(row["ts"])))
    return out


def _before(user: str, events: Sequence[tuple[int, float]], first: int) -> tuple[str, float] | None:
    """The read just before ``events[first]`` (None at the first event: nothing is older)."""
    return None if first == 0 else (user, events[first][1] - _BEFORE)


def _newest_window(
    user: str, events: Sequence[tuple[int, float]], max_len: int
) -> tuple[str, float] | None:
    """The read just before the newest window of ``max_len`` events starts."""
    return _before(user, events, max(0, len(events) - max_len))


def _read(memory_at: MemoryAt, reads: Sequence[tuple[str, float] | None]) -> list[MemoryTokens]:
    """Memory tokens of each read, one store pass for the distinct ones; empty for None."""
    unique = sorted({r for r in reads if r is not None})
    found = dict(zip(unique, memory_at(unique), strict=True))
    empty = MemoryTokens((), (), None)
    return [empty if r is None else found[r] for r in reads]


def _vocabulary(tokens: Sequence[MemoryTokens]) -> dict[str, int]:
    """Belief keys seen in training, numbered from 1 (0: empty or unknown)."""
    return {key: n for n, key in enumerate(sorted({k for t in tokens for k in t.keys}), 1)}


def _batch(tokens: Sequence[MemoryTokens], vocabulary: Mapping[str, int]) -> MemoryBatch:
    keys = np.zeros((len(tokens), MEMORY_CHUNKS), np.int64)
    strengths = np.zeros((len(tokens), MEMORY_CHUNKS), np.float32)
    dim = next((t.profile.shape[0] for t in tokens if t.profile is not None), 1)
    profiles = np.zeros((len(tokens), dim), np.float32)
    for n, t in enumerate(tokens):
        for slot, (key, strength) in enumerate(
            list(zip(t.keys, t.strengths, strict=True))[:MEMORY_CHUNKS]
        ):
            keys[n, slot] = vocabulary.get(key, 0)
            strengths[n, slot] = strength if keys[n, slot] else 0.0
        if t.profile is not None:
            profiles[n] = t.profile
    return MemoryBatch(
        torch.from_numpy(keys), torch.from_numpy(strengths), torch.from_numpy(profiles)
    )


def _profile_dim(memory: MemoryBatch | None) -> int:
    return 0 if memory is None else int(memory.profiles.shape[1])


def _ndcg(
    scores: npt.NDArray[np.float32], inputs: Sequence[Sequence[int]], targets: Sequence[int]
) -> float:
    """Mean NDCG@10 of each target among the items its input has not seen."""
    total = 0.0
    for row, seen, target in zip(scores, inputs, targets, strict=True):
        allowed = np.ones(row.shape[0], dtype=bool)
        allowed[[i - 1 for i in seen]] = False
        allowed[target] = True
        total += ndcg_at(target_rank(row, target, allowed), 10)
    return total / max(len(targets), 1)


def _without(memory: MemoryBatch, vocabulary: Mapping[str, int]) -> dict[str, MemoryBatch]:
    """The test memory with each belief family's chunks, the profile, or everything withheld."""
    families = sorted({key.split(":", 1)[0] for key in vocabulary})
    family_of = torch.zeros(len(vocabulary) + 1, dtype=torch.long)
    for key, n in vocabulary.items():
        family_of[n] = families.index(key.split(":", 1)[0]) + 1
    out: dict[str, MemoryBatch] = {}
    for n, family in enumerate(families, 1):
        keep = family_of[memory.keys] != n
        out[f"without_{family}"] = MemoryBatch(
            memory.keys * keep, memory.strengths * keep, memory.profiles
        )
    out["without_profile"] = replace(memory, profiles=torch.zeros_like(memory.profiles))
    out["without_memory"] = MemoryBatch(torch.zeros_like(memory.keys),
                                        torch.zeros_like(memory.strengths),
                                        torch.zeros_like(memory.profiles))  # fmt: skip
    return out
