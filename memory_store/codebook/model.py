"""The multifaceted index model: per facet, a learned projection into a code space and a
residual quantizer over it.

Facets are different views of an item (its text as MiniLM vectors, its
co-engagement as item2vec vectors). Each gets its own codebook so an item has one
path per facet, and a query can reach it through whichever view matches. The
projection is learned jointly with the codebook (MFLI), so codes group items
that are co-engaged, not only items whose frozen vectors happen to be close.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any, NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from memory_store.codebook.residual import ResidualVQ

__all__ = ["FacetOutput", "FacetSpec", "MultiFacetIndexModel"]


@dataclass(frozen=True)
class FacetSpec:
    """One view of the items: its name, input width and an optional hidden layer."""

    name: str
    in_dim: int
    hidden: int | None = None


class FacetOutput(NamedTuple):
    embedding: Tensor  # [n, code_dim], unit norm: the projected item
    quantized: Tensor  # [n, code_dim], straight-through code sum
    codes: Tensor  # [n, L]
    commit_loss: Tensor
    recon_loss: Tensor  # the code sum, decoded, against the facet's input


def _projection(spec: FacetSpec, code_dim: int) -> nn.Module:
    if spec.hidden is None:
        return nn.Linear(spec.in_dim, code_dim)
    return nn.Sequential(
        nn.Linear(spec.in_dim, spec.hidden), nn.GELU(), nn.Linear(spec.hidden, code_dim)
    )


class MultiFacetIndexModel(nn.Module):
    """Projections, reconstruction heads and one ``ResidualVQ`` per facet.

    The reconstruction head maps the quantized code back to the facet's input: it
    keeps the code space faithful to the item so the co-engagement loss cannot
    collapse it. Construction is seeded, so two models built alike are equal.
    """

    def __init__(
        self,
        facets: Sequence[FacetSpec],
        *,
        code_dim: int = 64,
        levels: int = 3,
        codebook_size: int = 256,
        decay: float = 0.95,
        dead_after: int = 20,
        seed: int = 0,
    ) -> None:
        super().__init__()
        names = [f.name for f in facets]
        if not names or len(set(names)) != len(names):
            raise ValueError("facets need distinct names")
        self.specs = {f.name: f for f in facets}
        self.code_dim = code_dim
        self.levels = levels
        self.codebook_size = codebook_size
        self.decay = decay
        self.dead_after = dead_after
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            self.projections = nn.ModuleDict({f.name: _projection(f, code_dim) for f in facets})
            self.decoders = nn.ModuleDict({f.name: nn.Linear(code_dim, f.in_dim) for f in facets})
            self.quantizers = nn.ModuleDict(
                {
                    f.name: ResidualVQ(
                        code_dim,
                        levels=levels,
                        codebook_size=codebook_size,
                        decay=decay,
                        dead_after=dead_after,
                    )
                    for f in facets
                }
            )

    @property
    def facets(self) -> list[str]:
        return list(self.specs)

    def config(self) -> dict[str, Any]:
        """What builds an equal model (before ``load_state_dict``): facets, shape, EMA settings."""
        return {
            "facets": [asdict(spec) for spec in self.specs.values()],
            "code_dim": self.code_dim,
            "levels": self.levels,
            "codebook_size": self.codebook_size,
            "decay": self.decay,
            "dead_after": self.dead_after,
        }

    def quantizer(self, facet: str) -> ResidualVQ:
        rvq = self.quantizers[facet]
        assert isinstance(rvq, ResidualVQ)
        return rvq

    def embed(self, facet: str, x: Tensor) -> Tensor:
        """The projected, unit-norm item vector that the codebook quantizes."""
        return F.normalize(self.projections[facet](x), dim=-1)

    def forward(self, facet: str, x: Tensor) -> FacetOutput:
        z = self.embed(facet, x)
        out = self.quantizer(facet)(z)
        recon = F.mse_loss(self.decoders[facet](out.quantized), x)
        return FacetOutput(z, out.quantized, out.codes, out.commit_loss, recon)

    @torch.no_grad()
    def encode(self, facet: str, x: Tensor) -> Tensor:
        """Greedy code paths ``[n, L]`` under the current codebook: real-time assignment."""
        return self.quantizer(facet).encode(self.embed(facet, x))

    @torch.no_grad()
    def query_paths(self, facet: str, x: Tensor, beam: int = 4) -> Tensor:
        """The ``beam`` nearest paths per query row, ``[n, B, L]``, best first."""
        paths, _ = self.quantizer(facet).beam_paths(self.embed(facet, x), beam)
        return paths

    @torch.no_grad()
    def query_levels(self, facet: str, x: Tensor, beam: int = 32) -> list[Tensor]:
        """Per depth ``d``, the ``beam`` nearest prefixes of length ``d + 1``."""
        levels = self.quantizer(facet).beam_levels(self.embed(facet, x), beam)
        return [paths for paths, _ in levels]

    @torch.no_grad()
    def path_error(self, facet: str, x: Tensor, paths: Tensor) -> Tensor:
        """Squared distance from each projected item to the decoding of a given path.

        A refresh compares an item's old path and its new one under the same codebook.
        """
        return (self.embed(facet, x) - self.quantizer(facet).decode(paths)).pow(2).sum(-1)
