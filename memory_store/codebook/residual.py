"""Residual quantization: L codebook levels, each quantizing what the previous left over.

An item's code path ``(c1, ..., cL)`` is a hierarchical address: items sharing a
prefix share a coarse region of the space, which is what the index backs off to
when a leaf is thin. Gradients pass straight through the quantizer so the
projection that feeds it trains jointly with the codebooks.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor, nn

from memory_store.codebook.quantizer import EMAQuantizer, squared_distances

__all__ = ["ResidualOutput", "ResidualVQ", "utilisation"]


class ResidualOutput(NamedTuple):
    quantized: Tensor  # [n, d]: value of the code sum, gradient of the input (straight-through)
    codes: Tensor  # [n, L] int64
    commit_loss: Tensor  # scalar, mean over levels


class ResidualVQ(nn.Module):
    """``levels`` x ``codebook_size`` codes; ``encode``/``decode`` are the inference API."""

    def __init__(
        self,
        dim: int,
        *,
        levels: int = 3,
        codebook_size: int = 256,
        decay: float = 0.95,
        dead_after: int = 20,
    ) -> None:
        super().__init__()
        if levels < 1 or codebook_size < 2:
            raise ValueError("need at least one level of at least two codes")
        self.dim = dim
        self.levels = levels
        self.codebook_size = codebook_size
        self.layers = nn.ModuleList(
            EMAQuantizer(dim, codebook_size, decay=decay, dead_after=dead_after)
            for _ in range(levels)
        )

    def _quantizers(self) -> list[EMAQuantizer]:
        return [layer for layer in self.layers if isinstance(layer, EMAQuantizer)]

    def forward(self, x: Tensor) -> ResidualOutput:
        residual = x
        total = torch.zeros_like(x)
        codes: list[Tensor] = []
        commit = x.new_zeros(())
        for layer in self._quantizers():
            out = layer(residual)
            total = total + out.quantized
            codes.append(out.codes)
            commit = commit + out.commit_loss
            # Each level sees the input minus the codes above it (gradient kept to the input).
            residual = residual - out.quantized
        quantized = x + (total - x).detach()
        return ResidualOutput(quantized, torch.stack(codes, dim=-1), commit / self.levels)

    @torch.no_grad()
    def encode(self, x: Tensor) -> Tensor:
        """Greedy code path per row, ``[n, L]``: O(L·K·d) per row, no codebook change."""
        residual = x
        codes: list[Tensor] = []
        for layer in self._quantizers():
            code = layer.nearest(residual)
            codes.append(code)
            residual = residual - layer.decode(code)
        return torch.stack(codes, dim=-1)

    @torch.no_grad()
    def decode(self, codes: Tensor) -> Tensor:
        """Sum of the code vectors along each path; ``codes`` is ``[..., L']`` with L' ≤ L."""
        layers = self._quantizers()
        if codes.shape[-1] > len(layers):
            raise ValueError("path longer than the number of levels")
        out = codes.new_zeros((*codes.shape[:-1], self.dim), dtype=layers[0].embed.dtype)
        for level in range(codes.shape[-1]):
            out = out + layers[level].decode(codes[..., level])
        return out

    @torch.no_grad()
    def beam_paths(self, x: Tensor, beam: int) -> tuple[Tensor, Tensor]:
        """The ``beam`` best paths per row by reconstruction error, best first.

        Returns ``paths [n, B, L]`` and their squared errors ``[n, B]``. Queries use
        several paths so neighbours just across a code boundary are still found.
        """
        return self.beam_levels(x, beam)[-1]

    @torch.no_grad()
    def beam_levels(self, x: Tensor, beam: int) -> list[tuple[Tensor, Tensor]]:
        """The beam at every depth: entry ``d`` holds the best prefixes of length ``d + 1``.

        Each is ``(paths [n, B_d, d + 1], squared errors [n, B_d])``, best first. A
        query reads whole prefix buckets when its nearest leaves are thin, and the
        beam at that depth says which prefixes are nearest (like IVF probing). The
        greedy path (where ``encode`` files an item equal to the query) is always
        kept, in place of the worst entry if the beam pruned it: a beam never loses
        to greedy, and an item is always found by a query equal to its vector.
        """
        n = x.shape[0]
        k = self.codebook_size
        greedy = self.encode(x)
        residual = x.unsqueeze(1)  # [n, 1, d]
        paths = torch.zeros((n, 1, 0), dtype=torch.long, device=x.device)
        levels: list[tuple[Tensor, Tensor]] = []
        for layer in self._quantizers():
            width = residual.shape[1]
            dist = squared_distances(residual.reshape(n * width, -1), layer.embed)
            dist = dist.reshape(n, width * k)
            keep = min(beam, width * k)
            errors, flat = dist.topk(keep, dim=-1, largest=False)
            parent, code = flat // k, flat % k
            paths = torch.cat(
                [
                    paths.gather(1, parent.unsqueeze(-1).expand(-1, -1, paths.shape[-1])),
                    code.unsqueeze(-1),
                ],
                dim=-1,
            )
            chosen = residual.gather(1, parent.unsqueeze(-1).expand(-1, -1, residual.shape[-1]))
            residual = chosen - layer.decode(code)
            prefix = greedy[:, : paths.shape[-1]]
            missing = ~(paths == prefix.unsqueeze(1)).all(-1).any(-1)
            if bool(missing.any()):
                own = x[missing] - self.decode(prefix[missing])
                paths[missing, -1], residual[missing, -1] = prefix[missing], own
                errors[missing, -1] = own.pow(2).sum(-1)
                order = errors.argsort(dim=-1, stable=True)
                errors, paths = errors.gather(1, order), paths.gather(1, _spread(order, paths))
                residual = residual.gather(1, _spread(order, residual))
            levels.append((paths, errors))
        return levels


def _spread(order: Tensor, like: Tensor) -> Tensor:
    """``order [n, B]`` as a gather index over ``like [n, B, m]``."""
    return order.unsqueeze(-1).expand(-1, -1, like.shape[-1])


def utilisation(codes: Tensor, codebook_size: int) -> float:
    """Fraction of (level, code) pairs that ``codes [n, L]`` use: 1.0 means no dead code."""
    levels = codes.shape[-1]
    used = sum(int(torch.unique(codes[:, level]).numel()) for level in range(levels))
    return used / float(levels * codebook_size)
