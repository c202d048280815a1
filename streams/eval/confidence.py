"""95 % bootstrap intervals over users: for each variant, and for its difference from a baseline.

"Beats" must mean beyond noise. Every variant is ranked on the same users, so a
comparison is paired: each bootstrap resample draws users (with replacement)
and takes the mean of (variant - baseline) per-user NDCG@10 over them; the
difference is significant when its 95 % interval excludes zero. The resamples
are seeded, so two runs of one result give the same intervals.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from streams.eval.ranking import hit_at, ndcg_at

__all__ = ["BASELINE", "CLAIMS", "RESAMPLES", "comparisons_section", "interval", "intervals"]

BASELINE = "ease_recent"
RESAMPLES = 1000
# The claims between two variants, each tested paired by user: (variant, against).
CLAIMS = (
    ("sasrec_short+memory", "sasrec_short"),
    ("sasrec_short+memory", "sasrec"),
    ("tiered_fixed", "flat"),
    ("flat", "recent"),
    ("tiered_rules", "tiered_fixed"),
    ("tiered_llm", "tiered_fixed"),
)
_LEVEL = 0.95

Ranks = Sequence[int | None]


def _per_user(ranks: Ranks, metric: str) -> npt.NDArray[np.float64]:
    score = ndcg_at if metric == "ndcg_at_10" else hit_at
    return np.array([score(r, 10) for r in ranks], dtype=np.float64)


def _resamples(n: int, resamples: int, seed: int) -> npt.NDArray[np.intp]:
    return np.random.default_rng(seed).integers(0, n, size=(resamples, n))


def interval(
    values: npt.ArrayLike, resamples: int = RESAMPLES, seed: int = 0
) -> tuple[float, float]:
    """The 95 % percentile-bootstrap interval of the mean of ``values``."""
    x = np.asarray(values, dtype=np.float64)
    if x.size == 0:
        return (0.0, 0.0)
    means = x[_resamples(x.size, resamples, seed)].mean(axis=1)
    lo, hi = np.quantile(means, [(1 - _LEVEL) / 2, (1 + _LEVEL) / 2])
    return (round(float(lo), 5), round(float(hi), 5))


def intervals(ranks: Ranks, seed: int = 0) -> dict[str, list[float]]:
    """``hr_at_10_ci95`` and ``ndcg_at_10_ci95`` of one variant's per-user ranks."""
    return {
        f"{m}_ci95": list(interval(_per_user(ranks, m), seed=seed))
        for m in ("hr_at_10", "ndcg_at_10")
    }


def comparisons_section(
    ranks: Mapping[str, Ranks], baseline: str = BASELINE, seed: int = 0
) -> dict[str, Any] | None:
    """Each variant's NDCG@10 minus the baseline's, paired by user, with its interval."""
    if baseline not in ranks:
        return None
    base = _per_user(ranks[baseline], "ndcg_at_10")
    out: dict[str, Any] = {}
    for name, mine in ranks.items():
        if name == baseline or len(mine) != base.size:
            continue
        out[name] = _paired(mine, ranks[baseline], seed)
    pairs = {f"{a} vs {b}": _paired(ranks[a], ranks[b], seed)
             for a, b in CLAIMS if a in ranks and b in ranks}  # fmt: skip
    return {
        "baseline": baseline,
        "metric": "ndcg_at_10",
        "method": f"paired percentile bootstrap over users, {RESAMPLES} resamples, seed {seed}",
        "variants": out,
        "claims": pairs,
    }


def _paired(mine: Ranks, theirs: Ranks, seed: int) -> dict[str, Any]:
    diff = _per_user(mine, "ndcg_at_10") - _per_user(theirs, "ndcg_at_10")
    lo, hi = interval(diff, seed=seed)
    verdict = "beats" if lo > 0 else "below" if hi < 0 else "within noise"
    return {"difference": round(float(diff.mean()), 5), "ci95": [lo, hi], "verdict": verdict}
