"""Joint training (projections + codebooks) and the item2vec collaborative facet."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch
import torch.nn.functional as F

from memory_store.codebook.item2vec import Item2VecConfig, skipgram_pairs, train_item2vec
from memory_store.codebook.model import FacetSpec, MultiFacetIndexModel
from memory_store.codebook.train import TrainConfig, info_nce, train


@pytest.fixture(autouse=True)
def one_thread() -> Iterator[None]:
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def grouped_sequences(groups: int, per_group: int, users: int, seed: int) -> list[list[int]]:
    """Each user engages 8 items of one group: co-engagement follows the groups."""
    g = torch.Generator().manual_seed(seed)
    seqs = []
    for _ in range(users):
        group = int(torch.randint(0, groups, (1,), generator=g))
        picks = torch.randint(0, per_group, (8,), generator=g) + group * per_group
        seqs.append(picks.tolist())
    return seqs


def two_facet_model(seed: int = 0) -> MultiFacetIndexModel:
    facets = [FacetSpec("content", 24), FacetSpec("collab", 8, hidden=16)]
    return MultiFacetIndexModel(facets, code_dim=8, levels=2, codebook_size=8, seed=seed)


def features(n: int, seed: int) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {"content": torch.randn(n, 24, generator=g), "collab": torch.randn(n, 8, generator=g)}


def test_training_is_deterministic_for_a_seed() -> None:
    x = features(200, seed=1)
    pairs = skipgram_pairs(grouped_sequences(5, 40, 100, seed=1), window=2)
    runs = []
    for _ in range(2):
        model = two_facet_model(seed=3)
        report = train(model, x, pairs, TrainConfig(steps=30, batch_size=32, seed=7))
        runs.append((report.history, model.encode("content", x["content"])))
    assert runs[0][0] == runs[1][0]
    assert torch.equal(runs[0][1], runs[1][1])
    other = two_facet_model(seed=3)
    train(other, x, pairs, TrainConfig(steps=30, batch_size=32, seed=8))
    assert not torch.equal(other.encode("content", x["content"]), runs[0][1])


def test_global_rng_is_left_alone() -> None:
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    model = two_facet_model()
    train(model, features(50, seed=2), None, TrainConfig(steps=3, batch_size=16))
    assert torch.equal(torch.rand(3), expected)


def test_co_engagement_loss_pulls_co_engaged_items_together() -> None:
    """Content is pure noise; only the pairs say which items belong together."""
    groups, per_group = 4, 30
    g = torch.Generator().manual_seed(3)
    # Wider than the item count, so a linear projection can separate any grouping.
    x = {"content": torch.randn(groups * per_group, 128, generator=g)}
    pairs = skipgram_pairs(grouped_sequences(groups, per_group, 300, seed=3), window=3)
    group = torch.arange(groups * per_group) // per_group
    same = group.unsqueeze(0) == group.unsqueeze(1)

    def trained(engage_weight: float) -> tuple[float, float, float]:
        """(embedding similarity gap, first-code agreement within / across groups)."""
        model = MultiFacetIndexModel(
            [FacetSpec("content", 128)], code_dim=8, levels=2, codebook_size=8, seed=0
        )
        cfg = TrainConfig(steps=150, batch_size=64, engage_weight=engage_weight, seed=0)
        train(model, x, pairs, cfg)
        with torch.no_grad():
            z = model.embed("content", x["content"])
        sim = z @ z.t()
        first = model.encode("content", x["content"])[:, 0]
        agree = (first.unsqueeze(0) == first.unsqueeze(1)).float()
        gap = float(sim[same].mean() - sim[~same].mean())
        return gap, float(agree[same].mean()), float(agree[~same].mean())

    (gap, within, across), (gap0, within0, _) = trained(1.0), trained(0.0)
    assert gap > 0.3 and gap > gap0 + 0.25, (gap, gap0)
    # The codebook is trained with the embeddings: co-engaged items share first-level codes.
    assert within > 0.4 and across < 0.05, (within, across)
    assert within0 < 0.3, within0


def test_losses_fall_and_gradients_reach_every_projection() -> None:
    x = features(300, seed=4)
    pairs = skipgram_pairs(grouped_sequences(6, 50, 200, seed=4), window=2)
    model = two_facet_model()
    report = train(model, x, pairs, TrainConfig(steps=120, batch_size=64, log_every=10))
    first, last = report.history[0], report.history[-1]
    assert last.total < first.total and last.engage < first.engage
    model.train()
    out = model("collab", x["collab"][:32])
    (out.quantized.sum() + out.recon_loss).backward()
    for name, param in model.projections["collab"].named_parameters():
        assert param.grad is not None and float(param.grad.abs().sum()) > 0, name


def test_train_rejects_missing_or_misaligned_facets() -> None:
    model = two_facet_model()
    x = features(20, seed=5)
    with pytest.raises(ValueError, match="no features"):
        train(model, {"content": x["content"]}, None, TrainConfig(steps=1))
    with pytest.raises(ValueError, match="aligned"):
        train(model, {"content": x["content"], "collab": x["collab"][:10]}, None)


def test_info_nce_masks_duplicate_items_as_negatives() -> None:
    a = F.normalize(torch.randn(4, 6), dim=-1)
    b = a.clone()
    distinct = info_nce(a, b, torch.arange(4), torch.arange(4, 8), 0.1)
    # Rows 0 and 1 hold the same item on both sides: not each other's negatives.
    b[1], a[1] = b[0], a[0]
    dup_ids = torch.tensor([0, 0, 2, 3])
    masked = info_nce(a, b, dup_ids, dup_ids + 4, 0.1)
    unmasked = info_nce(a, b, torch.arange(4), torch.arange(4, 8), 0.1)
    assert float(masked) < float(unmasked)
    assert float(distinct) < 0.5


def test_skipgram_pairs_within_window_both_ways() -> None:
    pairs = skipgram_pairs([[1, 2, 3], [7]], window=1)
    assert sorted(map(tuple, pairs.tolist())) == [(1, 2), (2, 1), (2, 3), (3, 2)]
    assert skipgram_pairs([[5]], window=3).shape == (0, 2)


def test_item2vec_puts_co_engaged_items_close() -> None:
    groups, per_group = 5, 20
    seqs = [[f"item-{i}" for i in seq] for seq in grouped_sequences(groups, per_group, 400, seed=6)]
    vectors = train_item2vec(seqs, Item2VecConfig(dim=16, epochs=3, batch_size=1024, seed=0))
    assert vectors.vectors.shape == (len(vectors.items), 16)
    group = torch.tensor([int(item.split("-")[1]) // per_group for item in vectors.items])
    sim = vectors.vectors @ vectors.vectors.t()
    same = group.unsqueeze(0) == group.unsqueeze(1)
    off_diagonal = ~torch.eye(len(group), dtype=torch.bool)
    within = float(sim[same & off_diagonal].mean())
    across = float(sim[~same].mean())
    assert within > across + 0.3, (within, across)
    again = train_item2vec(seqs, Item2VecConfig(dim=16, epochs=3, batch_size=1024, seed=0))
    assert torch.equal(again.vectors, vectors.vectors)
    assert vectors.index()[vectors.items[3]] == 3
