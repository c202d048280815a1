"""Planned maintenance: only the chosen operations run, in lifecycle order, with their plan ids."""

from __future__ import annotations

from dataclasses import replace

import pytest

from memory_store.lifecycle import PlannedStep, run_planned
from memory_store.operations import LifecycleParams
from memory_store.tiers import Operation, apply_delta
from tests.unit.fake_embedding import fake_embed
from tests.unit.test_operations import EMPTY, ev, learn

P = LifecycleParams()
DAY = 86_400.0


def test_only_the_chosen_operations_run_each_with_its_plan_id() -> None:
    snap = learn(EMPTY, [ev(i, f"c{i}") for i in range(3)] + [ev(9, "h1", value=1.0)])
    later = 1_000.0 + 2_000 * DAY  # everything has long faded: the user kept busy elsewhere
    snap = replace(snap, events=(ev(int(2_000 * DAY), "x1"),))
    only_profile = run_planned(
        snap, [PlannedStep(Operation.RESYNTHESIS, P, "p1")], later, fake_embed
    )
    assert only_profile.profile is not None and not only_profile.deletes
    assert {c.op for c in only_profile.changes} == {Operation.RESYNTHESIS}
    assert {c.plan_id for c in only_profile.changes} == {"p1"}
    noted = run_planned(snap, [PlannedStep(Operation.FORGETTING, P, "p3", "rules: faded")], later,
                        fake_embed)  # fmt: skip
    assert noted.changes and all(c.detail.endswith(" [rules: faded]") for c in noted.changes)

    both = run_planned(
        snap,
        [PlannedStep(Operation.RESYNTHESIS, P, "p2"), PlannedStep(Operation.FORGETTING, P, "p1")],
        later,
        fake_embed,
    )
    # Forgetting ran first (lifecycle order), so the profile describes what is left: nothing.
    assert set(both.deletes) == {c.chunk_id for c in snap.chunks}
    by_op = {c.op: c.plan_id for c in both.changes}
    assert by_op == {Operation.FORGETTING: "p1", Operation.RESYNTHESIS: "p2"}


def test_a_fresh_profile_is_not_rebuilt_and_args_apply() -> None:
    snap = learn(EMPTY, [ev(i, f"c{i}") for i in range(3)])
    now = 1_010.0
    built = apply_delta(
        snap, run_planned(snap, [PlannedStep(Operation.RESYNTHESIS, P, "p")], now, fake_embed)
    )
    again = run_planned(built, [PlannedStep(Operation.RESYNTHESIS, P, "q")], now, fake_embed)
    assert again.is_empty
    strict = replace(P, forget_threshold=0.99)
    forgot = run_planned(built, [PlannedStep(Operation.FORGETTING, strict, "f")], now, fake_embed)
    assert set(forgot.deletes) == {c.chunk_id for c in built.chunks}


def test_absorb_operations_are_not_planned_here() -> None:
    with pytest.raises(ValueError, match="not maintenance"):
        run_planned(EMPTY, [PlannedStep(Operation.EXTRACTION, P, "p")], 0.0, fake_embed)
