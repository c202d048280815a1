"""Choosing the scorer's weights on validation interactions taken from the training split."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from streams.eval.scorer import ItemSpace, ReferenceScorer, ScorerConfig, unit_rows
from streams.eval.split import leave_last_out
from streams.eval.tuning import CONTENT_GRID, EASE_GRID, POPULARITY_GRID, tune_weights


def ev(n: int, user: str, item: str) -> dict[str, Any]:
    return {"event_id": f"e{n}", "tenant": "t", "user_id": user, "item_id": item,
            "type": "rate", "value": 5.0, "ts": 1000 + n}  # fmt: skip


# Items come in pairs with the same content vector: (p0, q0), (p1, q1), ...
PAIRS = 6
IDS = tuple(f"{c}{n}" for n in range(PAIRS) for c in "pq")
SPACE = ItemSpace(IDS, unit_rows(np.repeat(np.eye(PAIRS, dtype=np.float32), 2, axis=0)))


def rows(target_of: dict[int, str]) -> list[dict[str, Any]]:
    """User u: p_u, then q_u (its content twin: the validation target), then a held-out item."""
    out, n = [], 0
    for u in range(PAIRS):
        for item in (f"p{u}", f"q{u}", target_of.get(u, f"p{(u + 1) % PAIRS}")):
            out.append(ev(n, f"u{u}", item))
            n += 1
    return out


def test_content_weight_is_chosen_when_content_predicts_the_validation_items() -> None:
    split = leave_last_out(rows({}))
    # No collaborative signal and no popularity spread: only content can rank q_u.
    scorer = ReferenceScorer(SPACE, np.zeros((len(IDS), 2)), np.ones(len(IDS)), ScorerConfig())
    config, info = tune_weights(scorer, split)
    assert info["users"] == PAIRS
    assert len(info["ndcg_at_10"]) == len(CONTENT_GRID) * len(POPULARITY_GRID)
    # Every a > 0 ranks q_u first (ties go to the smallest weight); a = 0 ranks it last.
    assert info["chosen"] == {"content": 0.1, "popularity": 0.0}
    assert (config.content, config.collab, config.popularity) == (0.1, 1.0, 0.0)
    assert info["ndcg_at_10"]["a=0.1,g=0.0"] == 1.0
    assert info["ndcg_at_10"]["a=0.0,g=0.0"] < 1.0


def test_the_held_out_targets_do_not_move_the_choice() -> None:
    scorer = ReferenceScorer(SPACE, np.zeros((len(IDS), 2)), np.ones(len(IDS)), ScorerConfig())
    first = tune_weights(scorer, leave_last_out(rows({})))
    other = tune_weights(scorer, leave_last_out(rows({u: f"q{(u + 2) % PAIRS}"
                                                       for u in range(PAIRS)})))  # fmt: skip
    assert first == other


def test_a_sample_of_users_is_drawn_when_there_are_many() -> None:
    scorer = ReferenceScorer(SPACE, np.zeros((len(IDS), 2)), np.ones(len(IDS)), ScorerConfig())
    _, info = tune_weights(scorer, leave_last_out(rows({})), max_users=4)
    assert info["users"] == 4


def test_the_ease_weight_is_chosen_when_ease_predicts_the_validation_items() -> None:
    index = SPACE.index

    def twin_of_newest(items: Sequence[str]) -> npt.NDArray[np.float64]:
        """An EASE stand-in that knows p_u is followed by q_u."""
        out = np.zeros(len(IDS))
        if items:
            out[index["q" + items[0][1:]]] = 1.0
        return out

    scorer = ReferenceScorer(SPACE, np.zeros((len(IDS), 2)), np.ones(len(IDS)), ScorerConfig(),
                             twin_of_newest)  # fmt: skip
    config, info = tune_weights(scorer, leave_last_out(rows({})))
    assert len(info["ndcg_at_10"]) == len(CONTENT_GRID) * len(POPULARITY_GRID) * len(EASE_GRID)
    # a = 0, g = 0, e = 1 is the first grid point to rank every q_u first.
    assert info["chosen"] == {"content": 0.0, "popularity": 0.0, "ease": 1.0}
    assert (config.content, config.popularity, config.ease) == (0.0, 0.0, 1.0)
    assert info["ndcg_at_10"]["a=0.0,g=0.0,e=0.0"] < 1.0
