"""EASE: the closed form equals its definition, and the ranker weighs recent events most."""

from __future__ import annotations

from typing import Any

import numpy as np

from streams.eval.ease import EaseConfig, EaseRanker, fit_ease
from streams.eval.scorer import ItemSpace
from streams.eval.split import leave_last_out

ITEMS = ("a", "b", "c", "d", "e")
SPACE = ItemSpace(ITEMS, np.eye(len(ITEMS), dtype=np.float32))


def rows(histories: dict[str, list[str]]) -> list[dict[str, Any]]:
    out = []
    for u, items in histories.items():
        for k, item in enumerate(items):
            out.append({"event_id": f"{u}{k}", "tenant": "t", "user_id": u, "item_id": item,
                        "type": "view", "ts": float(k)})  # fmt: skip
    return sorted(out, key=lambda r: (r["ts"], r["event_id"]))


HISTORIES = {
    "u1": ["a", "b", "c", "x"], "u2": ["a", "b", "x"], "u3": ["c", "d", "x"],
    "u4": ["d", "e", "c", "x"], "u5": ["a", "b", "e", "x"], "u6": ["b", "d", "x"],
}  # fmt: skip


def test_each_column_is_the_ridge_regression_of_its_item_on_the_others() -> None:
    """EASE's definition: B[:, j] minimises ||X_j - X B_j||² + λ||B_j||² with B[j, j] = 0."""
    split = leave_last_out(rows(HISTORIES))  # "x", each user's last, is held out
    l2 = 0.7
    b = fit_ease(split, SPACE, l2).astype(np.float64)
    x = np.zeros((len(HISTORIES), len(ITEMS)))
    for n, items in enumerate(HISTORIES.values()):
        for item in items[:-1]:
            x[n, ITEMS.index(item)] = 1.0
    assert np.allclose(np.diag(b), 0.0)
    for j in range(len(ITEMS)):
        others = [i for i in range(len(ITEMS)) if i != j]
        xo = x[:, others]
        w = np.linalg.solve(xo.T @ xo + l2 * np.eye(len(others)), xo.T @ x[:, j])
        assert np.allclose(b[others, j], w, atol=1e-5)


def test_the_newest_event_weighs_most_and_the_window_cuts_the_rest() -> None:
    weights = np.zeros((5, 5), dtype=np.float32)
    weights[0, 1] = 1.0  # a -> b
    weights[2, 3] = 1.0  # c -> d
    weights[4, 3] = 5.0  # e -> d, strongly: but e is beyond the window
    ranker = EaseRanker(SPACE, weights, EaseConfig(window=2, half_life_events=1.0))
    newest_a = ranker.scores(["a", "c", "e"])
    assert list(newest_a) == [0.0, 1.0, 0.0, 0.5, 0.0]
    newest_c = ranker.scores(["c", "a", "unknown-item"])
    assert newest_c[3] > newest_c[1] > 0.0
    assert list(ranker.scores([])) == [0.0] * 5
