"""Training SASRec with early stopping, and scoring users with it.

Sequences are cut into non-overlapping windows of ``max_len`` from the newest
event back, so a long history trains whole; a window keeps where it starts,
so the caller can give it the memory as it stood before its first event (no
memory token then holds an item the window predicts). Training stops when
validation NDCG@10 has not improved for ``patience`` epochs, and the model
returns to its best epoch. A fixed seed, a seeded shuffle and a fixed number
of torch threads make a run repeatable.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt
import torch
from torch import Tensor
from torch.nn import functional

from streams.eval.sasrec import MemoryBatch, SASRec

__all__ = ["TrainLog", "Windows", "score_sequences", "train_sasrec", "training_windows"]


@dataclass(frozen=True)
class Windows:
    """Left-padded inputs, 0-based targets (-1: none), and (sequence, first index) each."""

    inputs: Tensor
    targets: Tensor
    starts: tuple[tuple[int, int], ...]


@dataclass
class TrainLog:
    """What training did: per-epoch loss and validation NDCG@10, and the epoch kept."""

    losses: list[float] = field(default_factory=list)
    validation: list[float] = field(default_factory=list)
    best_epoch: int = 0
    seconds: float = 0.0


def training_windows(sequences: Sequence[Sequence[int]], max_len: int) -> Windows:
    """Windows of every sequence with at least two items (item ids 1-based, oldest first)."""
    inputs: list[list[int]] = []
    targets: list[list[int]] = []
    starts: list[tuple[int, int]] = []
    for n, seq in enumerate(sequences):
        for end in range(len(seq), 1, -max_len):
            first = max(0, end - max_len - 1)
            chunk = list(seq[first:end])
            pad = max_len - (len(chunk) - 1)
            inputs.append([0] * pad + chunk[:-1])
            targets.append([-1] * pad + [i - 1 for i in chunk[1:]])
            starts.append((n, first))
    if not inputs:
        raise ValueError("no sequence has two items: nothing to train SASRec on")
    return Windows(
        torch.tensor(inputs, dtype=torch.long),
        torch.tensor(targets, dtype=torch.long),
        tuple(starts),
    )


def train_sasrec(
    model: SASRec,
    windows: Windows,
    validate: Callable[[SASRec], float],
    memory: MemoryBatch | None = None,
    on_epoch: Callable[[int, float, float], None] | None = None,
) -> TrainLog:
    """Train ``model`` in place on ``windows`` (``memory``: one row per window); early-stopped."""
    cfg = model.cfg
    log = TrainLog()
    started = time.monotonic()
    with _threads(cfg.threads):
        torch.manual_seed(cfg.seed)
        optimizer = torch.optim.Adam(model.parameters(), lr=cfg.lr, betas=(0.9, 0.98))
        shuffle = torch.Generator().manual_seed(cfg.seed)
        best: dict[str, Tensor] | None = None
        for epoch in range(1, cfg.max_epochs + 1):
            model.train()
            order = torch.randperm(windows.inputs.shape[0], generator=shuffle)
            total, count = 0.0, 0
            for start in range(0, len(order), cfg.batch_size):
                rows = order[start : start + cfg.batch_size]
                part = memory.rows(rows) if memory is not None else None
                loss, n = _step(model, optimizer, windows.inputs[rows], windows.targets[rows], part)
                total, count = total + loss * n, count + n
            log.losses.append(total / max(count, 1))
            model.eval()
            log.validation.append(validate(model))
            if on_epoch is not None:
                on_epoch(epoch, log.losses[-1], log.validation[-1])
            if log.validation[-1] > max(log.validation[:-1], default=-1.0):
                best, log.best_epoch = copy.deepcopy(model.state_dict()), epoch
            elif epoch - log.best_epoch >= cfg.patience:
                break
        assert best is not None
        model.load_state_dict(best)
        model.eval()
    log.seconds = time.monotonic() - started
    return log


def _step(
    model: SASRec,
    optimizer: torch.optim.Optimizer,
    inputs: Tensor,
    targets: Tensor,
    memory: MemoryBatch | None,
) -> tuple[float, int]:
    """One optimisation step: mean cross-entropy over the positions that have a target."""
    optimizer.zero_grad()
    hidden = model(inputs, memory)
    present = targets >= 0
    loss = functional.cross_entropy(model.logits(hidden[present]), targets[present])
    loss.backward()  # type: ignore[no-untyped-call]
    optimizer.step()
    return float(loss.detach()), int(present.sum())


@torch.no_grad()
def score_sequences(
    model: SASRec,
    sequences: Sequence[Sequence[int]],
    memory: MemoryBatch | None = None,
    batch_size: int = 512,
) -> npt.NDArray[np.float32]:
    """Next-item scores (rows x items, column j = item j + 1) after each sequence's last item."""
    max_len = model.cfg.max_len
    out = np.zeros((len(sequences), model.n_items), dtype=np.float32)
    with _threads(model.cfg.threads):
        model.eval()
        for start in range(0, len(sequences), batch_size):
            rows = []
            for seq in sequences[start : start + batch_size]:
                tail = list(seq[-max_len:])
                rows.append([0] * (max_len - len(tail)) + tail)
            part = None
            if memory is not None:
                part = memory.rows(torch.arange(start, start + len(rows)))
            hidden = model(torch.tensor(rows, dtype=torch.long), part)[:, -1, :]
            out[start : start + len(rows)] = model.logits(hidden).numpy()
    return out


@contextmanager
def _threads(n: int) -> Iterator[None]:
    """Run with ``n`` torch threads, then restore the caller's setting."""
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)
