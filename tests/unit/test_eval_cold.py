"""Cold items through the item codebook: found once assigned in real time, never otherwise."""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

from memory_store.codebook.tenant_state import CodebookConfig
from memory_store.codebook.train import TrainConfig
from streams.eval.cold import codebook_cold
from streams.eval.scorer import ItemSpace, unit_rows
from streams.eval.split import TimeSplit

SMALL = CodebookConfig(
    code_dim=8, levels=2, codebook_size=8, leaf_cap=8,
    train=TrainConfig(steps=40, batch_size=64, seed=0), pool=40, beam=8,
)  # fmt: skip


def test_only_the_real_time_index_offers_a_cold_item() -> None:
    rng = np.random.default_rng(3)
    space = ItemSpace(tuple(f"i{n}" for n in range(64)), unit_rows(rng.normal(size=(64, 16))))
    at_cut = frozenset(space.item_ids[:60])
    cold = ["i60", "i61", "i62", "i63"]

    def row(user: str, item: str) -> dict[str, Any]:
        return {"user_id": user, "item_id": item, "ts": 1}

    split = TimeSplit(
        train=[], test=[], train_fraction=0.9, split_ts=0.0,
        targets={f"u{n}": row(f"u{n}", item) for n, item in enumerate(cold)},
        history={f"u{n}": ["i0", "i1"] for n in range(4)}, known_items=at_cut,
        cold_targets=[row(f"u{n}", item) for n, item in enumerate(cold)],
    )  # fmt: skip
    index = space.index

    def wants_its_cold_item(user: str) -> npt.NDArray[np.float64]:
        return np.asarray(space.vectors[index[cold[int(user[1:])]]], dtype=np.float64)

    def empty(user: str) -> npt.NDArray[np.float64]:
        return np.zeros(16)

    result = codebook_cold(space, split, at_cut, {"exact": wants_its_cold_item, "none": empty},
                           config=SMALL)  # fmt: skip
    assert (result.items_at_cut, result.items_assigned) == (60, 4)
    assert result.realtime["exact"].hr_at_1 == 1.0
    assert result.rebuild_only["exact"].hr_at_10 == 0.0
    assert result.rebuild_only["exact"].unrankable == 4
    assert result.realtime["none"].hr_at_10 == 0.0  # an empty memory asks for nothing
    assert result.realtime_at_wide == {"exact": 1.0, "none": 0.0}
    assert result.rebuild_only_at_wide == {"exact": 0.0, "none": 0.0}
