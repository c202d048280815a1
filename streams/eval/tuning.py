"""Choosing the scorer's component weights on validation interactions, never on the targets.

A first ml-100k run with weights set a priori (a = 1, g = 0.5) showed, through
the ablations, that the content term lowered every memory variant: MiniLM's
genre/era similarity ranks a user's next film far worse than co-engagement
does. Rather than set the weights by looking at the targets, they are chosen
here on a validation set drawn from the training split alone: for up to
``max_users`` evaluated users (a seeded sample), the last training interaction
is the validation target and the ``flat`` memory of the events before it is
the input. The collaborative weight b stays 1 (the scale the others are
relative to); the content weight a, the popularity weight g and (when the
scorer has it) the EASE weight e are picked from small grids by NDCG@10 (ties:
the earlier grid entry, i.e. the smaller weight), without the codebook pool.
The chosen weights are then used for every memory variant alike. The
validation item is in the item2vec, EASE and popularity input, the same way
for every grid point.
"""

from __future__ import annotations

import random
from dataclasses import replace
from typing import Any

import numpy as np

from streams.eval.ranking import ndcg_at, target_rank
from streams.eval.scorer import ReferenceScorer, ScorerConfig, event_memory
from streams.eval.split import Row, TimeSplit

__all__ = ["CONTENT_GRID", "EASE_GRID", "POPULARITY_GRID", "tune_weights"]

CONTENT_GRID = (0.0, 0.1, 0.25, 0.5, 1.0)
POPULARITY_GRID = (0.0, 0.25, 0.5, 1.0, 2.0)
# The EASE term's weight e, relative to b = 1 (only when the scorer has EASE).
EASE_GRID = (0.0, 1.0, 2.0, 4.0, 8.0)


def tune_weights(
    scorer: ReferenceScorer, split: TimeSplit, max_users: int = 1000, seed: int = 0
) -> tuple[ScorerConfig, dict[str, Any]]:
    """The scorer config with (a, g) chosen on validation, and the grid's NDCG@10."""
    space, index = scorer.space, scorer.space.index
    by_user: dict[str, list[Row]] = {u: [] for u in split.targets}
    for row in split.train:
        events = by_user.get(str(row["user_id"]))
        if events is not None and str(row["item_id"]) in index:
            events.append(row)
    users = sorted(u for u, events in by_user.items() if len(events) >= 2)
    if len(users) > max_users:
        users = sorted(random.Random(seed).sample(users, max_users))
    if not users:
        return scorer.config, {"users": 0, "chosen": None, "ndcg_at_10": {}}
    cases = []
    for user in users:
        events = by_user[user]
        before, target = events[:-1], index[str(events[-1]["item_id"])]
        allowed = np.ones(len(space.item_ids), dtype=bool)
        allowed[[index[str(r["item_id"])] for r in before]] = False
        allowed[target] = True
        cases.append((scorer.components(event_memory(before, space, index)), target, allowed))
    table: dict[str, float] = {}
    best: tuple[float, float, float, float] | None = None
    with_ease = scorer.ease is not None
    for a in CONTENT_GRID:
        for g in POPULARITY_GRID:
            for e in EASE_GRID if with_ease else (0.0,):
                total = 0.0
                for parts, target, allowed in cases:
                    scores = a * parts["content"] + parts["collab"] + g * parts["popularity"]
                    if e:
                        scores = scores + e * parts["ease"]
                    total += ndcg_at(target_rank(scores, target, allowed), 10)
                ndcg = total / len(cases)
                table[f"a={a},g={g}" + (f",e={e}" if with_ease else "")] = round(ndcg, 5)
                if best is None or ndcg > best[0]:
                    best = (ndcg, a, g, e)
    assert best is not None
    _, a, g, e = best
    chosen = replace(scorer.config, content=a, collab=1.0, popularity=g, ease=e)
    picked = {"content": a, "popularity": g} | ({"ease": e} if with_ease else {})
    info = {"users": len(users), "chosen": picked, "ndcg_at_10": table}
    return chosen, info
