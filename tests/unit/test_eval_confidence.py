"""Bootstrap intervals: they cover the mean, shrink with more users, and judge paired gaps."""

from __future__ import annotations

import numpy as np

from streams.eval.confidence import comparisons_section, interval, intervals


def test_the_interval_holds_the_mean_and_narrows_with_more_users() -> None:
    rng = np.random.default_rng(1)
    few, many = rng.random(50), rng.random(5000)
    lo_few, hi_few = interval(few)
    lo_many, hi_many = interval(many)
    assert lo_few <= few.mean() <= hi_few and lo_many <= many.mean() <= hi_many
    assert hi_many - lo_many < (hi_few - lo_few) / 5
    assert interval(few) == interval(few)  # seeded
    assert interval([0.3] * 10) == (0.3, 0.3) and interval([]) == (0.0, 0.0)


def test_each_variant_gets_hr_and_ndcg_intervals_from_its_ranks() -> None:
    ranks: list[int | None] = [0, 3, 50, None] * 25
    out = intervals(ranks)
    assert set(out) == {"hr_at_10_ci95", "ndcg_at_10_ci95"}
    lo, hi = out["hr_at_10_ci95"]
    assert lo < 0.5 < hi  # half the users hit


def test_a_paired_gap_beyond_noise_beats_and_noise_does_not() -> None:
    rng = np.random.default_rng(2)
    base: list[int | None] = [int(r) for r in rng.integers(0, 20, 2000)]
    better = [max(r - 3, 0) if r is not None else None for r in base]
    shuffled = list(rng.permutation(np.array(base)))  # the same ranks, other users
    worse = [r + 5 if r is not None else None for r in base]
    section = comparisons_section(
        {"ease_recent": base, "better": better, "shuffled": shuffled, "worse": worse}
    )
    assert section is not None and section["baseline"] == "ease_recent"
    verdicts = {n: c["verdict"] for n, c in section["variants"].items()}
    assert verdicts == {"better": "beats", "shuffled": "within noise", "worse": "below"}
    assert comparisons_section({"only": base}) is None


def test_the_issues_claims_are_tested_pairwise_when_both_variants_ran() -> None:
    rng = np.random.default_rng(3)
    short: list[int | None] = [int(r) for r in rng.integers(0, 20, 2000)]
    memory = [max(r - 3, 0) if r is not None else None for r in short]
    section = comparisons_section(
        {"ease_recent": short, "sasrec_short": short, "sasrec_short+memory": memory}
    )
    assert section is not None
    assert set(section["claims"]) == {"sasrec_short+memory vs sasrec_short"}  # sasrec not run
    claim = section["claims"]["sasrec_short+memory vs sasrec_short"]
    assert (
        claim["verdict"] == "beats" and claim["ci95"][0] <= claim["difference"] <= claim["ci95"][1]
    )
