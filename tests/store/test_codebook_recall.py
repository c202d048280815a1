"""Code-path candidates against exact brute-force top-k on clustered data."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch
import torch.nn.functional as F

from memory_store.codebook.index import CodeIndex
from memory_store.codebook.model import FacetSpec, MultiFacetIndexModel
from memory_store.codebook.train import TrainConfig, train


@pytest.fixture(autouse=True)
def one_thread() -> Iterator[None]:
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def test_candidates_recall_exact_top_k_far_above_random() -> None:
    """3,000 unit vectors in 8 topics x 8 sub-topics; users are means of 3 items of a sub-topic.

    Measured: recall@50 0.62-0.71 over seeds 0-2, random 0.017. Asserted with margin.
    """
    n, dim, k = 3000, 32, 50
    g = torch.Generator().manual_seed(0)
    topics = F.normalize(torch.randn(8, dim, generator=g), dim=-1)
    noise = F.normalize(torch.randn(64, dim, generator=g), dim=-1)
    subtopics = F.normalize(topics.repeat_interleave(8, 0) + 0.8 * noise, dim=-1)
    which = torch.randint(0, 64, (n,), generator=g)
    spread = F.normalize(torch.randn(n, dim, generator=g), dim=-1)
    x = F.normalize(subtopics[which] + 0.5 * spread, dim=-1)

    model = MultiFacetIndexModel(
        [FacetSpec("content", dim)], code_dim=16, levels=3, codebook_size=16, seed=0
    )
    train(model, {"content": x}, None, TrainConfig(steps=150, batch_size=256, seed=0))
    index = CodeIndex(levels=3, codebook_size=16, leaf_cap=32)
    index.build("t", "content", [str(i) for i in range(n)], model.encode("content", x))

    recalls, sizes = [], []
    for q in range(100):
        members = torch.nonzero(which == which[q * 7]).flatten()[:3]
        user = F.normalize(x[members].mean(0, keepdim=True), dim=-1)
        exact = set((user @ x.t()).topk(k).indices.flatten().tolist())
        beams = model.query_paths("content", torch.cat([user, x[members]]), beam=4)
        paths = [tuple(p) for p in beams[0].tolist()] + [tuple(p) for p in beams[1:, 0].tolist()]
        found = index.candidates("t", {"content": paths}, k)
        sizes.append(len(found))
        recalls.append(len({int(i) for i in found} & exact) / k)
    recall = sum(recalls) / len(recalls)
    assert recall > 0.45, recall
    assert recall > 10 * (k / n)  # random k items: 0.017
    assert sum(sizes) / len(sizes) > 0.95 * k  # prefix backoff fills thin leaves up to k
