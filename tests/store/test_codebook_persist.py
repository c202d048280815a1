"""The item codebook in LanceDB: round trips, tenant isolation, versions and following writes."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from memory_store.codebook.item2vec import ItemVectors
from memory_store.codebook.item_codebook import ItemCodebook, UnknownTenantError
from memory_store.codebook.store import CODES_TABLE, CodebookStore, CodeRows
from memory_store.codebook.tenant_state import CodebookConfig
from memory_store.codebook.train import TrainConfig


@pytest.fixture(autouse=True)
def one_thread() -> Iterator[None]:
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


CONFIG = CodebookConfig(
    code_dim=8,
    levels=2,
    codebook_size=8,
    leaf_cap=4,  # small: many overflow sub-leaves, so slots must survive the round trip
    train=TrainConfig(steps=40, batch_size=64, seed=0),
    refresh_train=TrainConfig(steps=20, batch_size=64, lr=1e-3, seed=1),
    pool=60,
    beam=8,
)


def catalogue(n: int, seed: int, prefix: str = "i") -> dict[str, ItemVectors[str]]:
    g = torch.Generator().manual_seed(seed)
    centres = torch.randn(6, 12, generator=g)
    x = F.normalize(
        centres[torch.randint(0, 6, (n,), generator=g)] + 0.3 * torch.randn(n, 12, generator=g),
        dim=-1,
    )
    return {"content": ItemVectors([f"{prefix}{i}" for i in range(n)], x)}


@pytest.fixture
def saved(tmp_path: Path) -> tuple[ItemCodebook, Path]:
    codebook = ItemCodebook(CONFIG, CodebookStore(str(tmp_path)))
    codebook.fit("acme", catalogue(200, seed=0))
    return codebook, tmp_path


def queries(seed: int) -> torch.Tensor:
    return F.normalize(torch.randn(5, 12, generator=torch.Generator().manual_seed(seed)), dim=-1)


def test_a_saved_codebook_loads_identical_in_another_process(
    saved: tuple[ItemCodebook, Path],
) -> None:
    codebook, path = saved
    codebook.assign("acme", "late", {"content": queries(1)[0]})
    assert codebook.flush() == 1
    loaded = ItemCodebook(CONFIG, CodebookStore(str(path)))  # a fresh reader: loads lazily
    for q in queries(2):
        assert loaded.candidates("acme", {"content": q[None]}, 20) == codebook.candidates(
            "acme", {"content": q[None]}, 20
        )
        assert loaded.candidates("acme", {"content": q[None]}, 20, pool=0) == codebook.candidates(
            "acme", {"content": q[None]}, 20, pool=0
        )  # code order too: every bucket is read in the same order
    old, new = codebook._tenants["acme"].state, loaded._tenants["acme"].state
    assert new.index.entries("acme", "content") == old.index.entries("acme", "content")
    assert any(addr.slot > 0 for _, addr in new.index.entries("acme", "content"))
    assert new.version == old.version == 1 and new.next_seq == old.next_seq == {"content": 201}
    for key, value in old.model.state_dict().items():
        assert torch.equal(new.model.state_dict()[key], value), key
    assert torch.equal(loaded.item_vectors("acme", "content", ["late"])["late"], queries(1)[0])


def test_saving_twice_writes_no_duplicate_and_an_older_version_never_overwrites(
    saved: tuple[ItemCodebook, Path],
) -> None:
    codebook, path = saved
    store = CodebookStore(str(path))
    state = codebook._tenants["acme"].state
    vectors = {"content": state.vectors["content"].snapshot()}
    store.save_index("acme", 1, state.index, vectors)
    table = store._open(CODES_TABLE)
    assert table.count_rows() == 200
    stale = CodeRows(
        "content", ["i0"], torch.tensor([[7, 7]]), torch.tensor([0]), torch.tensor([999]),
        torch.zeros(1, 12), torch.tensor([0]),
    )  # fmt: skip
    store.save_codes("acme", [stale])
    rows = store.read_rows("acme")["content"]
    at = rows.items.index("i0")
    address = state.index.address("acme", "content", "i0")
    order = [item for item, _ in state.index.entries("acme", "content")].index("i0")
    assert address is not None and address.path != (7, 7)
    assert (int(rows.versions[at]), tuple(rows.paths[at].tolist()), int(rows.seq[at])) == (
        1,
        address.path,
        order,
    )
    same_version = CodeRows(
        "content", ["i0"], torch.tensor([[7, 7]]), torch.tensor([0]), torch.tensor([999]),
        torch.zeros(1, 12), torch.tensor([1]),
    )  # fmt: skip
    store.save_codes("acme", [same_version])  # a later write of the same version wins
    rows = store.read_rows("acme")["content"]
    assert tuple(rows.paths[rows.items.index("i0")].tolist()) == (7, 7)
    assert table.count_rows() == 200


def test_loads_filter_hard_on_the_tenant(tmp_path: Path) -> None:
    store = CodebookStore(str(tmp_path))
    acme = ItemCodebook(CONFIG, store)
    acme.fit("acme", catalogue(120, seed=0))
    acme.fit("globex", catalogue(80, seed=5, prefix="g"))
    acme.fit("o'neil", catalogue(30, seed=6, prefix="o"))  # a quote in the tenant id
    assert set(store.read_rows("acme")["content"].items) == {f"i{i}" for i in range(120)}
    assert set(store.read_rows("globex")["content"].items) == {f"g{i}" for i in range(80)}
    assert len(store.read_rows("o'neil")["content"].items) == 30
    assert store.read_rows("initech") == {}
    assert store.load_model("initech") is None and store.latest_version("initech") is None
    fresh = ItemCodebook(CONFIG, CodebookStore(str(tmp_path)))
    for q in queries(3):
        assert set(fresh.candidates("acme", {"content": q[None]}, 500)) <= {
            f"i{i}" for i in range(120)
        }
        assert set(fresh.candidates("globex", {"content": q[None]}, 500)) <= {
            f"g{i}" for i in range(80)
        }
    assert len(fresh.candidates("globex", {"content": queries(3)}, 500, pool=500)) == 80
    with pytest.raises(UnknownTenantError, match="initech"):
        fresh.candidates("initech", {"content": queries(3)}, 5)


def test_model_versions_and_the_newest_is_served(saved: tuple[ItemCodebook, Path]) -> None:
    codebook, path = saved
    report = codebook.refresh("acme", max_churn=0.2)
    assert report.version == 2
    store = CodebookStore(str(path))
    assert store.latest_version("acme") == 2
    first, second = store.load_model("acme", 1), store.load_model("acme")
    assert first is not None and second is not None
    assert (first.version, second.version, second.extra) == (1, 2, {"leaf_cap": 4})
    assert not all(
        torch.equal(first.model.state_dict()[k], v) for k, v in second.model.state_dict().items()
    )
    rows = store.read_rows("acme")["content"]
    assert set(rows.versions.tolist()) == {2}  # the refresh rewrote every row, dropped none older
    loaded = ItemCodebook(CONFIG, store)
    q = queries(4)
    assert loaded.candidates("acme", {"content": q}, 30) == codebook.candidates(
        "acme", {"content": q}, 30
    )


def test_rows_of_another_version_are_re_encoded_at_load(saved: tuple[ItemCodebook, Path]) -> None:
    """A row of another model version (a writer racing a refresh) is re-encoded at load."""
    _, path = saved
    store = CodebookStore(str(path))
    x = queries(5)[:1]
    stale = CodeRows(
        "content", ["racer"], torch.tensor([[0, 0]]), torch.tensor([0]), torch.tensor([500]),
        x, torch.tensor([0]),
    )  # fmt: skip
    store.save_codes("acme", [stale])
    loaded = ItemCodebook(CONFIG, store)
    assert loaded.load("acme")
    state = loaded._tenants["acme"].state
    expected = tuple(state.model.encode("content", x)[0].tolist())
    address = state.index.address("acme", "content", "racer")
    assert address is not None and address.path == expected
    assert loaded.flush() == 1  # the re-encoded row is written back at the served version
    assert int(store.read_rows("acme")["content"].versions[-1]) == 1


def test_sync_follows_the_writers_assignments_and_models(saved: tuple[ItemCodebook, Path]) -> None:
    writer, path = saved
    reader = ItemCodebook(CONFIG, CodebookStore(str(path)))
    probe = queries(6)[:1]
    assert "fresh" not in reader.candidates("acme", {"content": probe}, 5)
    writer.assign("acme", "fresh", {"content": probe[0]})
    writer.flush()
    assert reader.sync() >= 1
    assert reader.candidates("acme", {"content": probe}, 5)[0] == "fresh"
    assert reader.sync() >= 1  # re-reading the overlap changes nothing
    assert reader._tenants["acme"].state.index.paths("acme", "content") == (
        writer._tenants["acme"].state.index.paths("acme", "content")
    )
    writer.refresh("acme")
    reader.sync()
    assert reader._tenants["acme"].state.version == 2
    assert reader.candidates("acme", {"content": probe}, 5)[0] == "fresh"
