"""Joint training of projections and codebooks (MFLI): reconstruction + commitment +
co-engagement, in one loop.

Training the codebook with the embeddings, rather than k-means on frozen vectors,
lets the co-engagement loss move items that users engage together into the same
code regions. Every facet sees the same pairs of co-engaged items per step.

Losses per facet: reconstruction of the facet's input from the quantized code
(straight-through, so it trains the projection through the codebook);
commitment of the embedding to its codes; InfoNCE over co-engaged pairs on the
continuous embedding. InfoNCE on the code sums instead was measured to collapse
every item onto one code when the facet cannot separate the pairs (loss = ln B).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import Tensor

from memory_store.codebook.model import MultiFacetIndexModel

__all__ = ["StepLoss", "TrainConfig", "TrainReport", "info_nce", "train"]


@dataclass(frozen=True)
class TrainConfig:
    steps: int = 300
    batch_size: int = 256  # co-engaged pairs (or single items, without pairs) per step
    lr: float = 3e-3
    temperature: float = 0.1
    recon_weight: float = 1.0
    commit_weight: float = 0.25
    engage_weight: float = 0.5
    log_every: int = 25
    seed: int = 0


@dataclass(frozen=True)
class StepLoss:
    step: int
    total: float
    recon: float
    commit: float
    engage: float


@dataclass
class TrainReport:
    history: list[StepLoss] = field(default_factory=list)


def info_nce(a: Tensor, b: Tensor, a_ids: Tensor, b_ids: Tensor, temperature: float) -> Tensor:
    """Symmetric in-batch softmax: row i's positive is column i, other columns are negatives.

    A column holding the same item as the positive is masked out, so a popular item
    drawn twice in one batch is not used as its own negative.
    """
    a, b = F.normalize(a, dim=-1), F.normalize(b, dim=-1)
    logits = a @ b.t() / temperature
    same_b = b_ids.unsqueeze(0) == b_ids.unsqueeze(1)
    same_a = a_ids.unsqueeze(0) == a_ids.unsqueeze(1)
    eye = torch.eye(a.shape[0], dtype=torch.bool, device=a.device)
    target = torch.arange(a.shape[0], device=a.device)
    forward = F.cross_entropy(logits.masked_fill(same_b & ~eye, float("-inf")), target)
    backward = F.cross_entropy(logits.t().masked_fill(same_a & ~eye, float("-inf")), target)
    return 0.5 * (forward + backward)


def train(
    model: MultiFacetIndexModel,
    features: Mapping[str, Tensor],
    pairs: Tensor | None = None,
    config: TrainConfig | None = None,
) -> TrainReport:
    """Train ``model`` in place; ``features[facet]`` rows are items, aligned across facets.

    ``pairs`` is ``[m, 2]`` row indices of co-engaged items (e.g. from
    ``item2vec.skipgram_pairs``); without it only reconstruction and commitment
    train. Deterministic for a given ``config.seed`` (global RNG state is restored).
    """
    cfg = config or TrainConfig()
    facets = model.facets
    missing = set(facets) - set(features)
    if missing:
        raise ValueError(f"no features for facets {sorted(missing)}")
    n_items = features[facets[0]].shape[0]
    if any(features[f].shape[0] != n_items for f in facets):
        raise ValueError("facet features must have one row per item, aligned")
    use_pairs = pairs is not None and pairs.shape[0] > 0
    report = TrainReport()
    params = [p for p in model.parameters() if p.requires_grad]
    optim = torch.optim.Adam(params, lr=cfg.lr)
    model.train()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(cfg.seed)
        for step in range(cfg.steps):
            if use_pairs:
                assert pairs is not None
                batch = pairs[torch.randint(0, pairs.shape[0], (cfg.batch_size,))]
                ids = torch.cat([batch[:, 0], batch[:, 1]])
            else:
                ids = torch.randint(0, n_items, (cfg.batch_size,))
            recon = commit = engage = torch.zeros(())
            for facet in facets:
                out = model(facet, features[facet][ids])
                recon = recon + out.recon_loss
                commit = commit + out.commit_loss
                if use_pairs:
                    z, half = out.embedding, cfg.batch_size
                    engage = engage + info_nce(
                        z[:half], z[half:], ids[:half], ids[half:], cfg.temperature
                    )
            total = (
                cfg.recon_weight * recon + cfg.commit_weight * commit + cfg.engage_weight * engage
            )
            optim.zero_grad()
            total.backward()  # type: ignore[no-untyped-call]
            optim.step()
            if step % cfg.log_every == 0 or step == cfg.steps - 1:
                report.history.append(
                    StepLoss(step, *(float(v.detach()) for v in (total, recon, commit, engage)))
                )
    model.eval()
    return report
