"""Refresh after retraining: churn measured, and bounded however many items want to move."""

from __future__ import annotations

import math
from collections.abc import Iterator

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from memory_store.codebook.index import CodeIndex, Path, as_paths
from memory_store.codebook.model import FacetSpec, MultiFacetIndexModel
from memory_store.codebook.refresh import apply_refresh, bounded_moves, churn, plan_refresh
from memory_store.codebook.train import TrainConfig, train


@pytest.fixture(autouse=True)
def one_thread() -> Iterator[None]:
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def test_churn_counts_changed_paths_among_common_items() -> None:
    old = {"a": (0, 1), "b": (1, 1), "c": (2, 2)}
    new = {"a": (0, 1), "b": (1, 0), "d": (3, 3)}
    assert churn(old, new) == pytest.approx(0.5)
    assert churn(old, {"z": (0, 0)}) == 0.0


def test_bounded_moves_takes_the_largest_gains_above_the_margin() -> None:
    old = {i: (0,) for i in "abcde"}
    proposed = {i: (1,) for i in "abcde"} | {"new": (2,)}
    gain = {"a": 0.5, "b": 0.9, "c": 0.05, "d": 0.7, "e": 0.3}
    plan = bounded_moves(old, proposed, gain, max_churn=0.4, margin=0.1)
    assert plan.moved == ["b", "d"]  # budget floor(0.4 * 5) = 2; c is under the margin
    assert plan.wanted == 4
    assert plan.paths["b"] == (1,) and plan.paths["a"] == (0,) and plan.paths["new"] == (2,)
    assert churn(old, plan.paths) == pytest.approx(0.4) == plan.churn
    with pytest.raises(ValueError, match="max_churn"):
        bounded_moves(old, proposed, gain, max_churn=1.5)


@settings(max_examples=100, deadline=None)
@given(
    data=st.dictionaries(
        st.text("abcdefgh", min_size=1, max_size=3),
        st.tuples(
            st.integers(0, 3), st.integers(0, 3), st.floats(-1.0, 1.0), st.booleans()
        ),  # old code, new code, gain, present before the refresh
        max_size=40,
    ),
    max_churn=st.floats(0.0, 1.0),
    margin=st.floats(0.0, 0.5),
)
def test_churn_never_exceeds_the_bound(
    data: dict[str, tuple[int, int, float, bool]], max_churn: float, margin: float
) -> None:
    old = {i: (o,) for i, (o, _, _, present) in data.items() if present}
    proposed = {i: (n,) for i, (_, n, _, _) in data.items()}
    gain = {i: g for i, (_, _, g, _) in data.items()}
    plan = bounded_moves(old, proposed, gain, max_churn=max_churn, margin=margin)
    assert churn(old, plan.paths) <= max_churn + 1e-12
    assert plan.paths.keys() == proposed.keys()
    assert len(plan.moved) == min(plan.wanted, math.floor(max_churn * len(old)))
    for item, path in plan.paths.items():
        if item not in old:
            assert path == proposed[item]  # new items take their proposed path
        elif item in plan.moved:
            assert path == proposed[item] != old[item] and gain[item] > margin
        else:
            assert path == old[item]
    kept_gains = [gain[i] for i in old if old[i] != proposed[i] and i not in plan.moved]
    if plan.moved and kept_gains:
        assert min(gain[i] for i in plan.moved) >= max(kept_gains)


def test_refresh_after_retraining_respects_the_churn_bound() -> None:
    g = torch.Generator().manual_seed(0)
    centres = torch.randn(10, 16, generator=g) * 2.0
    x = centres[torch.randint(0, 10, (500,), generator=g)] + 0.4 * torch.randn(500, 16, generator=g)
    model = MultiFacetIndexModel(
        [FacetSpec("content", 16)], code_dim=8, levels=2, codebook_size=8, seed=0
    )
    train(model, {"content": x}, None, TrainConfig(steps=60, batch_size=128, seed=0))
    ids = [f"i{n}" for n in range(500)]
    index = CodeIndex(levels=2, codebook_size=8, leaf_cap=16)
    index.build("t", "content", ids[:450], model.encode("content", x[:450]))
    old = index.paths("t", "content")

    drifted = x + 0.5 * torch.randn(500, 16, generator=g)  # the catalogue shifted: retrain
    train(model, {"content": drifted}, None, TrainConfig(steps=60, batch_size=128, seed=1))
    refreshed = ids[50:]  # i0..i49 left the catalogue, i450..i499 are new
    free = plan_refresh(model, "content", refreshed, drifted[50:], old, max_churn=1.0)
    assert free.wanted > 40, free.wanted  # unbounded, many items would move
    plan = plan_refresh(model, "content", refreshed, drifted[50:], old, max_churn=0.05)
    common = 400
    assert len(plan.moved) == math.floor(0.05 * common) < free.wanted
    assert churn(old, plan.paths) <= 0.05
    # The movers are those whose new path reconstructs them best relative to the old one.
    assert set(plan.moved) <= set(free.moved)
    fresh = dict(zip(refreshed, as_paths(model.encode("content", drifted[50:])), strict=True))
    assert all(plan.paths[i] == fresh[i] for i in ids[450:])
    strict = plan_refresh(model, "content", refreshed, drifted[50:], old, max_churn=1.0, margin=9e9)
    assert strict.moved == [] and churn(old, strict.paths) == 0.0

    apply_refresh(index, "t", "content", plan)
    after = index.paths("t", "content")
    assert after == plan.paths
    assert not any(f"i{n}" in after for n in range(50))
    leaf_items = index.leaf_stats("t", "content").items
    assert leaf_items == len(refreshed)


def test_paths_given_as_lists_or_tensors_are_tuples() -> None:
    expected: list[Path] = [(1, 2), (3, 0)]
    assert as_paths(torch.tensor([[1, 2], [3, 0]])) == expected
    assert as_paths([[1, 2], [3, 0]]) == expected
