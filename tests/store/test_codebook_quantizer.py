"""Residual quantizer: it learns (error falls), its codes are valid, dead codes come back."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from memory_store.codebook.quantizer import EMAQuantizer
from memory_store.codebook.residual import ResidualVQ, utilisation


@pytest.fixture(autouse=True)
def one_thread() -> Iterator[None]:
    # On shared cores, tiny matmuls are ~100x slower with two contending threads.
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def clustered(n: int, dim: int, clusters: int, seed: int, spread: float = 0.2) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    centres = torch.randn(clusters, dim, generator=g) * 2.0
    which = torch.randint(0, clusters, (n,), generator=g)
    return centres[which] + spread * torch.randn(n, dim, generator=g)


def mean_error(rvq: ResidualVQ, x: torch.Tensor) -> float:
    return float((rvq.decode(rvq.encode(x)) - x).pow(2).sum(-1).mean())


def fit(rvq: ResidualVQ, x: torch.Tensor, steps: int, seed: int = 0) -> None:
    g = torch.Generator().manual_seed(seed)
    rvq.train()
    torch.manual_seed(seed)
    for _ in range(steps):
        rvq(x[torch.randint(0, x.shape[0], (256,), generator=g)])
    rvq.eval()


def test_reconstruction_error_falls_with_training() -> None:
    x = clustered(2000, 16, 40, seed=1)
    torch.manual_seed(0)
    rvq = ResidualVQ(16, levels=3, codebook_size=16)
    fit(rvq, x, steps=1)  # data-dependent init only
    start = mean_error(rvq, x)
    fit(rvq, x, steps=150)
    end = mean_error(rvq, x)
    assert end < 0.5 * start, (start, end)
    # More levels refine: the first level alone is worse than all three.
    one_level = (rvq.decode(rvq.encode(x)[:, :1]) - x).pow(2).sum(-1).mean()
    assert end < float(one_level)


def test_ema_moves_codes_onto_cluster_means_and_eval_freezes_them() -> None:
    x = clustered(3000, 8, 8, seed=2, spread=0.05)
    torch.manual_seed(0)
    rvq = ResidualVQ(8, levels=1, codebook_size=16, dead_after=5)
    assert list(rvq.parameters()) == []  # codes change by EMA only, never by the optimizer
    fit(rvq, x, steps=200)
    g = torch.Generator().manual_seed(2)
    centres = torch.randn(8, 8, generator=g) * 2.0
    layer = rvq.layers[0]
    assert isinstance(layer, EMAQuantizer)
    nearest_code = torch.cdist(centres, layer.embed).min(dim=1).values
    assert float(nearest_code.max()) < 0.1, nearest_code
    frozen = layer.embed.clone()
    rvq(x[:100])  # eval mode: no update
    assert torch.equal(frozen, layer.embed)


@pytest.mark.parametrize("dead_after", [0, 3])
def test_dead_code_replacement_revives_unused_codes(dead_after: int) -> None:
    x = clustered(2000, 8, 32, seed=3)
    torch.manual_seed(0)
    rvq = ResidualVQ(8, levels=1, codebook_size=32, dead_after=dead_after)
    fit(rvq, x, steps=1)
    layer = rvq.layers[0]
    assert isinstance(layer, EMAQuantizer)
    with torch.no_grad():  # kill half the codes: park them far from every point
        layer.embed[16:] = 100.0
        layer.embed_sum[16:] = 100.0
    before = utilisation(rvq.encode(x), 32)
    assert before <= 0.5
    fit(rvq, x, steps=40)
    after = utilisation(rvq.encode(x), 32)
    if dead_after:
        assert after > 0.9, after
    else:
        assert after <= 0.5, after  # without replacement nothing brings them back


def test_straight_through_gradient_reaches_the_input() -> None:
    torch.manual_seed(0)
    rvq = ResidualVQ(4, levels=2, codebook_size=4)
    x = torch.randn(32, 4, requires_grad=True)
    out = rvq(x)
    (out.quantized.sum() + out.commit_loss).backward()
    assert x.grad is not None
    # Quantized part passes gradient 1 straight through; commitment adds its own pull.
    assert torch.all(x.grad > 0.5)
    assert out.codes.shape == (32, 2)


def test_utilisation_counts_used_codes_per_level() -> None:
    codes = torch.tensor([[0, 1], [0, 2], [3, 2]])
    assert utilisation(codes, 4) == pytest.approx(4 / 8)


def test_forward_and_encode_agree_on_codes() -> None:
    x = clustered(500, 6, 10, seed=4)
    torch.manual_seed(0)
    rvq = ResidualVQ(6, levels=3, codebook_size=8)
    fit(rvq, x, steps=20)
    assert torch.equal(rvq(x).codes, rvq.encode(x))


@settings(max_examples=25, deadline=None)
@given(
    n=st.integers(1, 40),
    dim=st.integers(1, 8),
    levels=st.integers(1, 4),
    size=st.integers(2, 12),
    beam=st.integers(1, 6),
    seed=st.integers(0, 1000),
)
def test_paths_are_valid_and_beam_search_never_loses_to_greedy(
    n: int, dim: int, levels: int, size: int, beam: int, seed: int
) -> None:
    torch.set_num_threads(1)
    torch.manual_seed(seed)
    x = torch.randn(n, dim)
    rvq = ResidualVQ(dim, levels=levels, codebook_size=size, dead_after=2)
    fit(rvq, x, steps=3, seed=seed)
    codes = rvq.encode(x)
    assert codes.shape == (n, levels) and codes.dtype == torch.long
    assert int(codes.min()) >= 0 and int(codes.max()) < size
    assert rvq.decode(codes).shape == x.shape
    paths, errors = rvq.beam_paths(x, beam)
    assert paths.shape == (n, min(beam, size**levels), levels)
    assert int(paths.min()) >= 0 and int(paths.max()) < size
    actual = (rvq.decode(paths) - x.unsqueeze(1)).pow(2).sum(-1)
    assert torch.allclose(errors, actual, atol=1e-4)
    assert torch.all(errors[:, 1:] >= errors[:, :-1] - 1e-5)  # best first
    greedy = (rvq.decode(codes) - x).pow(2).sum(-1)
    assert torch.all(errors[:, 0] <= greedy + 1e-4)
