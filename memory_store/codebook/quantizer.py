"""One codebook level: a vector quantizer whose codes follow their data by EMA.

EMA updates (rather than a codebook loss) keep the codes stable while the
projections upstream move, which is what lets MFLI train codebook and embeddings
together. Codes that no row picked for ``dead_after`` training steps are
re-seeded from the current batch, so the codebook does not collapse onto a few
codes. Style after lucidrains' vector-quantize-pytorch (``EuclideanCodebook``).
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["EMAQuantizer", "QuantizerOutput", "squared_distances"]


class QuantizerOutput(NamedTuple):
    quantized: Tensor  # [n, d], the chosen code vectors (no gradient to the codebook)
    codes: Tensor  # [n] int64
    commit_loss: Tensor  # scalar: pulls the inputs towards their codes


def squared_distances(x: Tensor, codebook: Tensor) -> Tensor:
    """``[n, k]`` squared Euclidean distances, via one matmul."""
    return (
        x.pow(2).sum(-1, keepdim=True)
        - 2.0 * x @ codebook.t()
        + codebook.pow(2).sum(-1).unsqueeze(0)
    ).clamp_min_(0.0)


class EMAQuantizer(nn.Module):
    """``codebook_size`` codes of ``dim``; updated only in training mode, never by the optimizer."""

    embed: Tensor
    embed_sum: Tensor
    cluster_size: Tensor
    idle_steps: Tensor
    initted: Tensor

    def __init__(
        self,
        dim: int,
        codebook_size: int,
        *,
        decay: float = 0.95,
        eps: float = 1e-5,
        dead_after: int = 20,
    ) -> None:
        super().__init__()
        if not 0.0 < decay < 1.0:
            raise ValueError("decay must be in (0, 1)")
        self.dim = dim
        self.codebook_size = codebook_size
        self.decay = decay
        self.eps = eps
        self.dead_after = dead_after  # 0 disables dead-code replacement
        self.register_buffer("embed", torch.randn(codebook_size, dim) * 0.01)
        self.register_buffer("embed_sum", self.embed.clone())
        self.register_buffer("cluster_size", torch.ones(codebook_size))
        self.register_buffer("idle_steps", torch.zeros(codebook_size, dtype=torch.long))
        self.register_buffer("initted", torch.tensor(False))

    def nearest(self, x: Tensor) -> Tensor:
        """Code index per row: the O(K·d) step of real-time assignment."""
        return squared_distances(x, self.embed).argmin(dim=-1)

    def decode(self, codes: Tensor) -> Tensor:
        return F.embedding(codes, self.embed)

    def forward(self, x: Tensor) -> QuantizerOutput:
        flat = x.detach()
        if self.training and not bool(self.initted):
            self._init_from(flat)
        codes = self.nearest(flat)
        if self.training:
            self._ema_update(flat, codes)
            self._replace_dead(flat)
        quantized = self.decode(codes)
        commit = F.mse_loss(x, quantized.detach())
        return QuantizerOutput(quantized, codes, commit)

    @torch.no_grad()
    def _init_from(self, x: Tensor) -> None:
        """Data-dependent start: k-means++ seeding on the first batch.

        Spread-out seeds matter: a cluster that gets no seed is later served by a code
        parked between it and a neighbour, and no code is idle enough to be replaced.
        """
        picks = _kmeans_pp(x, self.codebook_size)
        self.embed.copy_(picks)
        self.embed_sum.copy_(picks)
        self.cluster_size.fill_(1.0)
        self.initted.fill_(True)

    @torch.no_grad()
    def _ema_update(self, x: Tensor, codes: Tensor) -> None:
        onehot = F.one_hot(codes, self.codebook_size).to(x.dtype)  # [n, k]
        counts = onehot.sum(0)
        self.cluster_size.mul_(self.decay).add_(counts, alpha=1.0 - self.decay)
        self.embed_sum.mul_(self.decay).add_(onehot.t() @ x, alpha=1.0 - self.decay)
        # Laplace smoothing: an empty cluster divides by ~eps, never by zero.
        total = self.cluster_size.sum()
        smoothed = (self.cluster_size + self.eps) / (total + self.codebook_size * self.eps) * total
        self.embed.copy_(self.embed_sum / smoothed.unsqueeze(-1))
        self.idle_steps.add_(1).masked_fill_(counts > 0, 0)

    @torch.no_grad()
    def _replace_dead(self, x: Tensor) -> None:
        if self.dead_after <= 0:
            return
        dead = self.idle_steps >= self.dead_after
        n_dead = int(dead.sum())
        if n_dead == 0:
            return
        picks = _sample_rows(x, n_dead)
        self.embed[dead] = picks
        # Restart the EMA as a cluster of one, so the next update does not snap it back.
        self.embed_sum[dead] = picks
        self.cluster_size[dead] = 1.0
        self.idle_steps[dead] = 0


def _sample_rows(x: Tensor, n: int) -> Tensor:
    """``n`` rows of ``x``: without replacement when it has enough, else with."""
    rows = x.shape[0]
    if rows >= n:
        index = torch.randperm(rows, device=x.device)[:n]
    else:
        index = torch.randint(0, rows, (n,), device=x.device)
    return x[index].clone()


def _kmeans_pp(x: Tensor, k: int) -> Tensor:
    """``k`` rows by D² sampling; uniform once every row is already a seed."""
    first = int(torch.randint(0, x.shape[0], (1,)))
    seeds = [x[first]]
    closest = (x - x[first]).pow(2).sum(-1)
    for _ in range(k - 1):
        total = float(closest.sum())
        if total > 0.0:
            pick = int(torch.multinomial(closest / total, 1))
        else:
            pick = int(torch.randint(0, x.shape[0], (1,)))
        seeds.append(x[pick])
        closest = torch.minimum(closest, (x - x[pick]).pow(2).sum(-1))
    return torch.stack(seeds).clone()
