"""The collaborative facet: item vectors learned from who engaged with what (item2vec).

Skip-gram with negative sampling over users' interaction sequences: items that
appear near each other in many sequences get close vectors, whatever their text
says. This is the "collab" facet's input; it needs no labels and trains in
seconds on CPU for catalogues of tens of thousands of items.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["Item2VecConfig", "ItemVectors", "skipgram_pairs", "train_item2vec"]

ItemId = TypeVar("ItemId", bound=Hashable)


@dataclass(frozen=True)
class Item2VecConfig:
    dim: int = 32
    window: int = 3
    negatives: int = 5
    epochs: int = 5
    batch_size: int = 4096
    lr: float = 0.02
    seed: int = 0


@dataclass(frozen=True)
class ItemVectors(Generic[ItemId]):
    """Unit-norm vectors, row ``i`` for ``items[i]``."""

    items: list[ItemId]
    vectors: Tensor

    def index(self) -> dict[ItemId, int]:
        return {item: i for i, item in enumerate(self.items)}


def skipgram_pairs(sequences: Sequence[Sequence[int]], window: int) -> Tensor:
    """``[m, 2]`` (centre, context) index pairs within ``window`` positions, both ways."""
    pairs: list[Tensor] = []
    for seq in sequences:
        if len(seq) < 2:
            continue
        s = torch.as_tensor(seq, dtype=torch.long)
        for offset in range(1, min(window, len(seq) - 1) + 1):
            a, b = s[:-offset], s[offset:]
            pairs.append(torch.stack([a, b], dim=-1))
            pairs.append(torch.stack([b, a], dim=-1))
    if not pairs:
        return torch.zeros((0, 2), dtype=torch.long)
    return torch.cat(pairs)


def train_item2vec(
    sequences: Sequence[Sequence[ItemId]], config: Item2VecConfig | None = None
) -> ItemVectors[ItemId]:
    """Item vectors from interaction sequences; deterministic for a given ``config.seed``.

    Negatives are drawn from the unigram distribution raised to 0.75 (word2vec's
    choice), so popular items are pushed away less than their raw frequency says.
    """
    cfg = config or Item2VecConfig()
    items: list[ItemId] = []
    index: dict[ItemId, int] = {}
    encoded: list[list[int]] = []
    for seq in sequences:
        row = []
        for item in seq:
            if item not in index:
                index[item] = len(items)
                items.append(item)
            row.append(index[item])
        encoded.append(row)
    n = len(items)
    if n == 0:
        return ItemVectors(items, torch.zeros((0, cfg.dim)))
    pairs = skipgram_pairs(encoded, cfg.window)
    counts = torch.bincount(torch.as_tensor([i for r in encoded for i in r]), minlength=n)
    noise = counts.to(torch.float32).pow(0.75)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(cfg.seed)
        centre = ((torch.rand(n, cfg.dim) - 0.5) / cfg.dim).requires_grad_()
        context = torch.zeros(n, cfg.dim, requires_grad=True)
        optim = torch.optim.Adam([centre, context], lr=cfg.lr)
        for _ in range(cfg.epochs):
            order = torch.randperm(pairs.shape[0])
            for start in range(0, pairs.shape[0], cfg.batch_size):
                batch = pairs[order[start : start + cfg.batch_size]]
                negs = torch.multinomial(noise, batch.shape[0] * cfg.negatives, replacement=True)
                u = centre[batch[:, 0]]  # [b, d]
                pos = (u * context[batch[:, 1]]).sum(-1)
                neg = torch.einsum("bd,bkd->bk", u, context[negs.view(-1, cfg.negatives)])
                loss = -(F.logsigmoid(pos).mean() + F.logsigmoid(-neg).sum(-1).mean())
                optim.zero_grad()
                loss.backward()  # type: ignore[no-untyped-call]
                optim.step()
    return ItemVectors(items, F.normalize(centre.detach(), dim=-1))
