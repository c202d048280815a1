"""The code-path index: capped leaves, prefix backoff, tenant isolation, real-time assign."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from memory_store.codebook.index import Address, CodeIndex, Path
from memory_store.codebook.model import FacetSpec, MultiFacetIndexModel
from memory_store.codebook.train import TrainConfig, train


@pytest.fixture(autouse=True)
def one_thread() -> Iterator[None]:
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def small_index() -> CodeIndex:
    """a, b, c share leaf (0,0,0) with cap 2 (c overflows); siblings at each prefix depth."""
    index = CodeIndex(levels=3, codebook_size=4, leaf_cap=2)
    index.insert(
        "t",
        "f",
        {
            "a": (0, 0, 0),
            "b": (0, 0, 0),
            "c": (0, 0, 0),
            "d": (0, 0, 1),
            "e": (0, 1, 0),
            "f": (1, 0, 0),
        },
    )
    return index


def test_leaf_cap_sends_extra_items_to_overflow_sub_leaves() -> None:
    index = small_index()
    assert index.address("t", "f", "a") == Address((0, 0, 0), 0)
    assert index.address("t", "f", "c") == Address((0, 0, 0), 1)
    stats = index.leaf_stats("t", "f")
    assert (stats.leaves, stats.items, stats.max, stats.overflow_items) == (4, 6, 3, 1)
    index.remove("t", ["a"])  # a freed primary slot is reused by the next arrival
    index.insert("t", "f", {"g": (0, 0, 0)})
    assert index.address("t", "f", "g") == Address((0, 0, 0), 0)
    assert index.address("t", "f", "c") == Address((0, 0, 0), 1)  # never displaced


def test_candidates_read_primaries_then_overflow_then_shorter_prefixes() -> None:
    index = small_index()
    leaf = [(0, 0, 0)]
    assert index.candidates("t", {"f": leaf}, 2) == ["a", "b"]
    assert index.candidates("t", {"f": leaf}, 3) == ["a", "b", "c"]
    assert index.candidates("t", {"f": leaf}, 4) == ["a", "b", "c", "d"]  # prefix (0, 0)
    # Backoff stops at the first level: f, under another first code, is never reached.
    assert index.candidates("t", {"f": leaf}, 10) == ["a", "b", "c", "d", "e"]
    # Every query path's primary sub-leaf comes before any overflow.
    assert index.candidates("t", {"f": [(0, 0, 0), (0, 1, 0)]}, 3) == ["a", "b", "e"]
    assert index.candidates("t", {"f": [(3, 3, 3)]}, 5) == []
    assert index.candidates("t", {"f": leaf}, 0) == []
    assert index.candidates("t", {"missing": leaf}, 5) == []


def test_facets_are_read_round_robin() -> None:
    index = CodeIndex(levels=2, codebook_size=4, leaf_cap=8)
    index.insert("t", "content", {"c1": (0, 0), "c2": (0, 1)})
    index.insert("t", "collab", {"k1": (2, 2), "k2": (3, 0)})
    query = {"content": [(0, 0), (0, 1)], "collab": [(2, 2), (3, 0)]}
    assert index.candidates("t", query, 4) == ["c1", "k1", "c2", "k2"]


def test_build_puts_lowest_error_items_in_the_primary_sub_leaf() -> None:
    index = CodeIndex(levels=2, codebook_size=4, leaf_cap=2)
    codes = torch.tensor([[1, 2], [1, 2], [1, 2], [0, 3]])
    index.build("t", "f", ["x", "y", "z", "w"], codes, torch.tensor([0.3, 0.1, 0.2, 0.9]))
    assert index.items_at("t", "f", (1, 2)) == ["y", "z", "x"]
    assert index.address("t", "f", "x") == Address((1, 2), 1)
    assert index.items_at("t", "f", (1,)) == ["y", "z", "x"]
    index.build("t", "f", ["w"], torch.tensor([[0, 3]]))  # build replaces the table
    assert index.paths("t", "f") == {"w": (0, 3)}


@pytest.mark.parametrize("path", [(0, 4), (0,), (-1, 0), (0, 0, 0)])
def test_invalid_paths_are_rejected(path: Path) -> None:
    index = CodeIndex(levels=2, codebook_size=4)
    with pytest.raises(ValueError, match="invalid path"):
        index.insert("t", "f", {"x": path})
    assert index.paths("t", "f") == {}


def test_tenants_never_share_candidates() -> None:
    index = CodeIndex(levels=2, codebook_size=4, leaf_cap=2)
    index.insert("acme", "f", {"a1": (0, 0), "a2": (0, 1)})
    index.insert("globex", "f", {"g1": (0, 0), "g2": (0, 0), "g3": (0, 2)})
    query = {"f": [(0, 0), (0, 1), (0, 2)]}
    assert set(index.candidates("acme", query, 100)) == {"a1", "a2"}
    assert set(index.candidates("globex", query, 100)) == {"g1", "g2", "g3"}
    assert index.candidates("initech", query, 100) == []
    index.remove("acme", ["g1"])  # another tenant's item id: nothing happens to globex
    assert index.address("globex", "f", "g1") == Address((0, 0), 0)


paths_st = st.tuples(st.integers(0, 2), st.integers(0, 2), st.integers(0, 2))
ops_st = st.lists(
    st.tuples(
        st.sampled_from(["acme", "globex"]),
        st.sampled_from(["content", "collab"]),
        st.sampled_from([f"i{n}" for n in range(12)]),
        st.one_of(paths_st, st.none()),  # None: remove the item
    ),
    max_size=60,
)


@settings(max_examples=80, deadline=None)
@given(ops=ops_st, cap=st.integers(1, 3), query=st.lists(paths_st, min_size=1, max_size=3))
def test_every_item_sits_in_exactly_one_leaf_per_facet_and_tenants_stay_apart(
    ops: list[tuple[str, str, str, Path | None]], cap: int, query: list[Path]
) -> None:
    index = CodeIndex(levels=3, codebook_size=3, leaf_cap=cap)
    expected: dict[tuple[str, str], dict[str, Path]] = {}
    for tenant, facet, item, path in ops:
        table = expected.setdefault((tenant, facet), {})
        if path is None:
            index.remove(tenant, [item], facet=facet)
            table.pop(item, None)
        else:
            index.insert(tenant, facet, {item: path})
            table[item] = path
    for (tenant, facet), want in expected.items():
        assert index.paths(tenant, facet) == want
        seen = Counter(
            item for path in set(want.values()) for item in index.items_at(tenant, facet, path)
        )
        assert seen == Counter(want.keys())  # exactly one leaf each
        slots: Counter[tuple[Path, int]] = Counter()
        for item, path in want.items():
            addr = index.address(tenant, facet, item)
            assert addr is not None and addr.path == path
            slots[(addr.path, addr.slot)] += 1
            for depth in (1, 2):
                assert item in index.items_at(tenant, facet, path[:depth])
        assert all(n <= cap for n in slots.values())  # no sub-leaf over the cap
        for depth in (1, 2):
            for prefix in {p[:depth] for p in want.values()}:
                under = {i for i, p in want.items() if p[:depth] == prefix}
                assert set(index.items_at(tenant, facet, prefix)) == under
        assert index.leaf_stats(tenant, facet).items == len(want)
    for tenant in ("acme", "globex"):
        own = {i for (t, _), table in expected.items() if t == tenant for i in table}
        got = index.candidates(tenant, {"content": query, "collab": query}, 50)
        assert len(got) == len(set(got)) and set(got) <= own


def trained_model(seed: int = 0) -> tuple[MultiFacetIndexModel, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    centres = torch.randn(12, 16, generator=g) * 2.0
    x = centres[torch.randint(0, 12, (600,), generator=g)] + 0.3 * torch.randn(600, 16, generator=g)
    model = MultiFacetIndexModel(
        [FacetSpec("content", 16)], code_dim=8, levels=2, codebook_size=8, seed=seed
    )
    train(model, {"content": x}, None, TrainConfig(steps=60, batch_size=128, seed=seed))
    return model, x


def test_assign_encodes_new_items_without_touching_the_codebook() -> None:
    model, x = trained_model()
    index = CodeIndex(levels=2, codebook_size=8, encoder=model)
    ids = [f"i{n}" for n in range(500)]
    index.build("t", "content", ids, model.encode("content", x[:500]))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    placed = index.assign("t", "content", ["new1", "new2"], x[500:502])
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    expected = model.encode("content", x[500:502]).tolist()
    assert [list(placed[i].path) for i in ("new1", "new2")] == expected
    own_path = index.address("t", "content", "new1")
    assert own_path is not None
    assert "new1" in index.candidates("t", {"content": [own_path.path]}, 10_000)
    with pytest.raises(RuntimeError, match="encoder"):
        CodeIndex(levels=2, codebook_size=8).assign("t", "content", ["z"], x[:1])
