"""SASRec, the collaborative reference the memory variants are compared with.

A small self-attentive sequential recommender (Kang & McAuley, 2018) trained
in torch on the same training sequences the worker replays. Deviations from
the paper, all to keep it small, fast and deterministic on two CPU cores:
full softmax cross-entropy over the catalogue instead of one sampled negative
(the catalogue is a few thousand items, and the full loss trains faster and
better); pre-norm blocks; sequences cut into non-overlapping windows of
``max_len`` from the newest event back, so long histories train whole. One
torch thread (two contend on these shared cores), a fixed seed and a seeded
shuffle make a run repeatable. Items without any training interaction keep
their initial embedding: SASRec has no content to rank a cold item by.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import torch
from torch import Tensor, nn

__all__ = ["SASRec", "SASRecConfig", "score_users", "train_sasrec", "training_windows"]


@dataclass(frozen=True)
class SASRecConfig:
    dim: int = 64
    layers: int = 2
    heads: int = 1
    max_len: int = 50
    dropout: float = 0.2
    epochs: int = 20
    batch_size: int = 128
    lr: float = 1e-3
    seed: int = 0


class _Block(nn.Module):
    """Pre-norm causal self-attention and a position-wise feed-forward layer."""

    def __init__(self, cfg: SASRecConfig) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(cfg.dim)
        self.attn = nn.MultiheadAttention(cfg.dim, cfg.heads, dropout=cfg.dropout, batch_first=True)
        self.norm2 = nn.LayerNorm(cfg.dim)
        self.ffn = nn.Sequential(
            nn.Linear(cfg.dim, cfg.dim),
            nn.ReLU(),
            nn.Dropout(cfg.dropout),
            nn.Linear(cfg.dim, cfg.dim),
        )
        self.drop = nn.Dropout(cfg.dropout)

    def forward(self, x: Tensor, mask: Tensor, keep: Tensor) -> Tensor:
        q = self.norm1(x)
        attended, _ = self.attn(q, q, q, attn_mask=mask, need_weights=False)
        x = x + self.drop(attended)
        x = x + self.drop(self.ffn(self.norm2(x)))
        return x * keep


class SASRec(nn.Module):
    """Item ids 1..n (0 pads); ``forward`` gives one hidden state per position."""

    def __init__(self, n_items: int, cfg: SASRecConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.n_items = n_items
        self.items = nn.Embedding(n_items + 1, cfg.dim, padding_idx=0)
        self.positions = nn.Embedding(cfg.max_len, cfg.dim)
        self.blocks = nn.ModuleList(_Block(cfg) for _ in range(cfg.layers))
        self.norm = nn.LayerNorm(cfg.dim)
        self.drop = nn.Dropout(cfg.dropout)
        # Small item vectors: with N(0, 1) the first logits are ~8 wide and training stalls.
        nn.init.normal_(self.items.weight, std=cfg.dim**-0.5)
        nn.init.normal_(self.positions.weight, std=cfg.dim**-0.5)
        with torch.no_grad():
            self.items.weight[0].zero_()

    def forward(self, seq: Tensor) -> Tensor:
        length = seq.shape[1]
        keep = (seq > 0).unsqueeze(-1).to(torch.float32)
        pos = torch.arange(length, device=seq.device).unsqueeze(0)
        x = self.drop(self.items(seq) * math.sqrt(self.cfg.dim) + self.positions(pos)) * keep
        # Large negatives, not -inf: a padded row that may attend to nothing stays finite.
        future = torch.triu(torch.ones(length, length, dtype=torch.bool), 1)
        blocked = future.unsqueeze(0) | (seq == 0).unsqueeze(1)
        mask = torch.zeros(blocked.shape, dtype=torch.float32).masked_fill(blocked, -1e9)
        mask = mask.repeat_interleave(self.cfg.heads, dim=0)
        for block in self.blocks:
            x = block(x, mask, keep)
        out: Tensor = self.norm(x)
        return out

    def logits(self, hidden: Tensor) -> Tensor:
        """Scores of items 1..n (column j is item j + 1) for each hidden state."""
        return hidden @ self.items.weight[1:].T


def training_windows(sequences: Sequence[Sequence[int]], max_len: int) -> tuple[Tensor, Tensor]:
    """(inputs, targets), left-padded to ``max_len``; targets are 0-based items, -1 = none."""
    inputs: list[list[int]] = []
    targets: list[list[int]] = []
    for seq in sequences:
        for end in range(len(seq), 1, -max_len):
            chunk = list(seq[max(0, end - max_len - 1) : end])
            pad = max_len - (len(chunk) - 1)
            inputs.append([0] * pad + chunk[:-1])
            targets.append([-1] * pad + [i - 1 for i in chunk[1:]])
    if not inputs:
        raise ValueError("no sequence has two items: nothing to train SASRec on")
    return torch.tensor(inputs, dtype=torch.long), torch.tensor(targets, dtype=torch.long)


def train_sasrec(
    sequences: Sequence[Sequence[int]],
    n_items: int,
    cfg: SASRecConfig,
    on_epoch: Callable[[int, float], None] | None = None,
) -> tuple[SASRec, list[float]]:
    """Train on item-id sequences (1-based, oldest first); returns the model and epoch losses."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        torch.manual_seed(cfg.seed)
        model = SASRec(n_items, cfg)
        inputs, targets = training_windows(sequences, cfg.max_len)
        optimizer = torch.optim.Adam(model.parameters(), lr=cfg.lr, betas=(0.9, 0.98))
        shuffle = torch.Generator().manual_seed(cfg.seed)
        losses: list[float] = []
        model.train()
        for epoch in range(cfg.epochs):
            order = torch.randperm(inputs.shape[0], generator=shuffle)
            total, count = 0.0, 0
            for start in range(0, len(order), cfg.batch_size):
                batch = order[start : start + cfg.batch_size]
                loss, n = step(model, optimizer, inputs[batch], targets[batch])
                total, count = total + loss * n, count + n
            losses.append(total / max(count, 1))
            if on_epoch is not None:
                on_epoch(epoch + 1, losses[-1])
        model.eval()
        return model, losses
    finally:
        torch.set_num_threads(threads)


def step(
    model: SASRec, optimizer: torch.optim.Optimizer, inputs: Tensor, targets: Tensor
) -> tuple[float, int]:
    """One optimisation step: mean cross-entropy over the non-padded positions."""
    optimizer.zero_grad()
    logits = model.logits(model(inputs))
    loss = nn.functional.cross_entropy(
        logits.reshape(-1, model.n_items), targets.reshape(-1), ignore_index=-1
    )
    loss.backward()  # type: ignore[no-untyped-call]
    optimizer.step()
    return float(loss.detach()), int((targets >= 0).sum())


@torch.no_grad()
def score_users(
    model: SASRec, sequences: Sequence[Sequence[int]], batch_size: int = 256
) -> npt.NDArray[np.float32]:
    """Next-item scores (users x items, column j = item j + 1) from each user's last events."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        model.eval()
        max_len = model.cfg.max_len
        out = np.zeros((len(sequences), model.n_items), dtype=np.float32)
        for start in range(0, len(sequences), batch_size):
            rows = []
            for seq in sequences[start : start + batch_size]:
                tail = list(seq[-max_len:])
                rows.append([0] * (max_len - len(tail)) + tail)
            hidden = model(torch.tensor(rows, dtype=torch.long))[:, -1, :]
            out[start : start + len(rows)] = model.logits(hidden).numpy()
        return out
    finally:
        torch.set_num_threads(threads)
