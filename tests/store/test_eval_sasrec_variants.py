"""The SASRec rankers on a small split: what they read, when, and that the memory reaches them."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from streams.eval.memory_read import MemoryTokens
from streams.eval.sasrec import SASRecConfig
from streams.eval.sasrec_variants import Served, sasrec_variant
from streams.eval.split import Row, leave_last_out

CFG = SASRecConfig(dim=16, layers=1, heads=1, max_epochs=3, patience=3, batch_size=8,
                   dropout=0.0, threads=1)  # fmt: skip
USERS = 12
ITEMS = 120


def _split() -> tuple[list[Row], dict[str, int]]:
    """Each user walks the catalogue from their own start, one item per minute."""
    rows: list[Row] = []
    for u in range(USERS):
        for step in range(70 + u):
            rows.append({"user_id": f"u{u}", "item_id": f"i{(u + step) % ITEMS}",
                         "ts": 60.0 * step + u, "type": "rating", "value": 4.0})  # fmt: skip
    rows.sort(key=lambda r: r["ts"])
    # One visit per (user, item), as MovieLens: keep a user's first rating of an item.
    seen: set[tuple[str, str]] = set()
    unique = []
    for r in rows:
        if (r["user_id"], r["item_id"]) not in seen:
            seen.add((r["user_id"], r["item_id"]))
            unique.append(r)
    return unique, {f"i{n}": n for n in range(ITEMS)}


def _served(rows: Sequence[Row], index: dict[str, int], users: Sequence[str]) -> Served:
    cut = leave_last_out(rows)
    out: dict[str, list[tuple[int, float]]] = {u: [] for u in users}
    for r in cut.train:
        out[r["user_id"]].append((index[r["item_id"]] + 1, float(r["ts"])))
    return out


@pytest.mark.parametrize("name", ["sasrec", "sasrec_short"])
def test_plain_variants_score_every_target_and_never_read_memory(name: str, tmp_path: Path) -> None:
    rows, index = _split()
    cut = leave_last_out(rows)
    run = sasrec_variant(name, cut, index, _served(rows, index, list(cut.targets)), None,
                         tmp_path, CFG)  # fmt: skip
    assert run.scores.shape == (len(cut.targets), ITEMS)
    assert run.details["max_len"] == (200 if name == "sasrec" else 50)
    assert run.details["epochs_run"] == 3 and not run.details["loaded_from_cache"]
    assert run.infer_s > 0
    score = run.score_fn()
    assert np.array_equal(score("u3"), run.scores[list(cut.targets).index("u3")])
    again = sasrec_variant(name, cut, index, _served(rows, index, list(cut.targets)), None,
                           tmp_path, CFG)  # fmt: skip
    assert again.details["loaded_from_cache"] and np.array_equal(again.scores, run.scores)


def test_memory_variant_reads_only_before_each_window(tmp_path: Path) -> None:
    """Every read is strictly before the first event of the window it feeds."""
    rows, index = _split()
    cut = leave_last_out(rows)
    reads: list[tuple[str, float]] = []

    def memory_at(batch: Sequence[tuple[str, float]]) -> list[MemoryTokens]:
        reads.extend(batch)
        return [MemoryTokens(("genre:a", "era:b"), (0.5, -0.2), None) for _ in batch]

    served = _served(rows, index, list(cut.targets))
    run = sasrec_variant("sasrec_short+memory", cut, index, served, memory_at, tmp_path, CFG)
    assert run.details["belief_keys"] == 2
    # The test scores again with each part of the memory withheld: what the model draws on.
    assert set(run.ablated) == {"without_era", "without_genre", "without_profile",
                                "without_memory"}  # fmt: skip
    for scores in run.ablated.values():
        assert scores.shape == run.scores.shape
    assert not np.array_equal(run.ablated["without_memory"], run.scores)
    assert np.array_equal(run.ablated["without_profile"], run.scores)  # none was read
    # Users with more than 50 training events have older history: it is read for them.
    times = {u: [ts for _, ts in events] for u, events in served.items()}
    assert reads and {u for u, _ in reads} == {u for u, t in times.items() if len(t) > 50}
    for user, t in reads:
        before = [ts for ts in times[user] if ts <= t]
        after = [ts for ts in times[user] if ts > t]
        # The read falls between two of the user's events: a window starts right after it.
        assert before and after and after[0] - t < 1.0


def test_memory_variant_without_a_memory_is_an_error(tmp_path: Path) -> None:
    rows, index = _split()
    cut = leave_last_out(rows)
    with pytest.raises(ValueError, match="tiered run"):
        sasrec_variant("sasrec_short+memory", cut, index, {}, None, tmp_path,
                       replace(CFG, max_epochs=1))  # fmt: skip
