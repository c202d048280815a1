"""SASRec, the collaborative reference ranker, optionally reading memory tokens.

A self-attentive sequential recommender (Kang & McAuley, 2018) with the
training objective of Klenitskiy & Vasilev (2023): full softmax cross-entropy
over the catalogue at every position, which is what brings SASRec to its
published ML-1M figures. Pre-norm blocks; causal attention through torch's
fused ``scaled_dot_product_attention``; logits only at positions that have a
target, so left padding costs nothing in the output layer.

With ``memory_keys`` > 0 the model also reads a user's long-term memory as a
few tokens put before the sequence, as PerSRec compresses a long history
into learnable tokens: one token per preference chunk (its belief's key
embedded, plus its signed strength) and one for the profile's embedding.
Every position attends to them; the item sequence stays causal.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor, nn
from torch.nn import functional

__all__ = ["MemoryBatch", "SASRec", "SASRecConfig"]


@dataclass(frozen=True)
class SASRecConfig:
    """Model size and the training schedule (``streams.eval.sasrec_train``)."""

    dim: int = 64
    layers: int = 2
    heads: int = 1
    max_len: int = 200
    dropout: float = 0.2
    max_epochs: int = 40
    # Epochs without a better validation NDCG@10 before training stops.
    patience: int = 3
    batch_size: int = 64
    lr: float = 3e-3
    seed: int = 0
    threads: int = 2


@dataclass(frozen=True)
class MemoryBatch:
    """Memory tokens' inputs for a batch of sequences (chunk slot 0 = empty)."""

    keys: Tensor  # (B, K) long: belief key ids, 0 for an empty slot
    strengths: Tensor  # (B, K) float: polarity sign * decayed strength
    profiles: Tensor  # (B, P) float: the profile's embedding, zeros when none

    def rows(self, index: Tensor) -> MemoryBatch:
        return MemoryBatch(self.keys[index], self.strengths[index], self.profiles[index])


class _Block(nn.Module):
    """Pre-norm causal self-attention and a position-wise feed-forward layer."""

    def __init__(self, cfg: SASRecConfig) -> None:
        super().__init__()
        self.heads = cfg.heads
        self.dropout = cfg.dropout
        self.norm1 = nn.LayerNorm(cfg.dim)
        self.qkv = nn.Linear(cfg.dim, 3 * cfg.dim)
        self.out = nn.Linear(cfg.dim, cfg.dim)
        self.norm2 = nn.LayerNorm(cfg.dim)
        self.ffn = nn.Sequential(
            nn.Linear(cfg.dim, cfg.dim),
            nn.ReLU(),
            nn.Dropout(cfg.dropout),
            nn.Linear(cfg.dim, cfg.dim),
        )
        self.drop = nn.Dropout(cfg.dropout)

    def forward(self, x: Tensor, keep: Tensor) -> Tensor:
        batch, length, dim = x.shape
        q, k, v = (
            t.view(batch, length, self.heads, dim // self.heads).transpose(1, 2)
            for t in self.qkv(self.norm1(x)).chunk(3, dim=-1)
        )
        attended = functional.scaled_dot_product_attention(
            q, k, v, is_causal=True, dropout_p=self.dropout if self.training else 0.0
        )
        x = x + self.drop(self.out(attended.transpose(1, 2).reshape(batch, length, dim)))
        x = x + self.drop(self.ffn(self.norm2(x)))
        return x * keep


class SASRec(nn.Module):
    """Item ids 1..n (0 pads, on the left); ``forward`` gives one hidden state per item."""

    def __init__(
        self, n_items: int, cfg: SASRecConfig, memory_keys: int = 0, profile_dim: int = 0
    ) -> None:
        super().__init__()
        self.cfg = cfg
        self.n_items = n_items
        self.items = nn.Embedding(n_items + 1, cfg.dim, padding_idx=0)
        self.positions = nn.Embedding(cfg.max_len, cfg.dim)
        self.blocks = nn.ModuleList(_Block(cfg) for _ in range(cfg.layers))
        self.norm = nn.LayerNorm(cfg.dim)
        self.drop = nn.Dropout(cfg.dropout)
        self.reads_memory = memory_keys > 0
        if self.reads_memory:
            self.belief_keys = nn.Embedding(memory_keys + 1, cfg.dim, padding_idx=0)
            self.belief_strength = nn.Linear(2, cfg.dim)  # (signed strength, |strength|)
            self.profile = nn.Linear(profile_dim, cfg.dim)
            nn.init.normal_(self.belief_keys.weight, std=cfg.dim**-0.5)
        # Small item vectors: with N(0, 1) the first logits are ~8 wide and training stalls.
        nn.init.normal_(self.items.weight, std=cfg.dim**-0.5)
        nn.init.normal_(self.positions.weight, std=cfg.dim**-0.5)
        with torch.no_grad():
            self.items.weight[0].zero_()

    def forward(self, seq: Tensor, memory: MemoryBatch | None = None) -> Tensor:
        length = seq.shape[1]
        keep = (seq > 0).unsqueeze(-1).to(torch.float32)
        x = self.items(seq) * math.sqrt(self.cfg.dim) + self.positions.weight[:length]
        x = self.drop(x) * keep
        slots = 0
        if self.reads_memory:
            if memory is None:
                raise ValueError("this SASRec reads memory tokens: pass a MemoryBatch")
            tokens, token_keep = self._memory_tokens(memory)
            slots = tokens.shape[1]
            x = torch.cat([self.drop(tokens) * token_keep, x], dim=1)
            keep = torch.cat([token_keep, keep], dim=1)
        for block in self.blocks:
            x = block(x, keep)
        out: Tensor = self.norm(x[:, slots:])
        return out

    def _memory_tokens(self, memory: MemoryBatch) -> tuple[Tensor, Tensor]:
        """(B, K + 1, dim) tokens, chunks then the profile, and which of them are present."""
        signed = memory.strengths.unsqueeze(-1)
        chunks = self.belief_keys(memory.keys) + self.belief_strength(
            torch.cat([signed, signed.abs()], dim=-1)
        )
        profile = self.profile(memory.profiles).unsqueeze(1)
        present = torch.cat(
            [memory.keys > 0, memory.profiles.abs().sum(-1, keepdim=True) > 0], dim=1
        )
        keep = present.unsqueeze(-1).to(torch.float32)
        return torch.cat([chunks, profile], dim=1) * keep, keep

    def logits(self, hidden: Tensor) -> Tensor:
        """Scores of items 1..n (column j is item j + 1) for each hidden state."""
        return hidden @ self.items.weight[1:].T
