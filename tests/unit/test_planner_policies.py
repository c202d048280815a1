"""The fixed and rules policies on crafted summaries."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from memory_store.operations import LifecycleParams
from memory_store.tiers import Operation, UserSnapshot
from planner.plan import MAX_AHEAD_S, Plan, validate_plan
from planner.policies import FixedIntervalPolicy, RulesConfig, RulesPolicy
from planner.summary import OperationClock, UserSummary, summarize

DAY = 86_400.0
NOW = 1_000 * DAY
Op = Operation
QUIET = summarize(UserSnapshot("acme", "u1"), OperationClock(), NOW, LifecycleParams())


def user(since: dict[Operation, int] | None = None, **changes: Any) -> UserSummary:
    """A user with nothing to do, changed by ``changes``; ``since`` sets events since per op."""
    events_since = {op: 0 for op in Operation} | (since or {})
    seconds_since: dict[Operation, float | None] = {op: 60.0 for op in Operation}
    base = replace(QUIET, events_since=events_since, seconds_since=seconds_since)
    return replace(base, **changes)


def ops(plan: Plan) -> dict[Operation, dict[str, Any]]:
    """op -> when, after checking the plan passes the validator."""
    assert isinstance(validate_plan(plan.model_dump(mode="json"), {("acme", "u1")}, NOW), Plan)
    assert all(o.reason for o in plan.ops)
    return {o.op: o.when.model_dump() for o in plan.ops}


NOW_ = {"kind": "now"}
EVERYTHING = {op: 5 for op in Operation}


def test_fixed_absorbs_new_events_and_maintains_once_the_interval_elapsed() -> None:
    fixed = FixedIntervalPolicy(every_s=30.0)
    (plan,) = fixed.decide([user(EVERYTHING)])
    assert plan.policy == "fixed" and plan.model is None and plan.users == (("acme", "u1"),)
    assert ops(plan) == {op: NOW_ for op in Operation}


def test_fixed_waits_for_the_interval() -> None:
    recent = {op: 10.0 for op in Operation}
    (plan,) = FixedIntervalPolicy(every_s=30.0).decide([user(EVERYTHING, seconds_since=recent)])
    assert set(ops(plan)) == {Op.EXTRACTION, Op.REINFORCEMENT, Op.WEAKENING}


def test_fixed_skips_untouched_users_like_the_worker() -> None:
    (plan,) = FixedIntervalPolicy(every_s=30.0).decide([user()])
    assert plan.ops == ()
    (plan,) = FixedIntervalPolicy(every_s=30.0, only_touched=False).decide([user()])
    assert set(ops(plan)) == {Op.CONSOLIDATION, Op.FORGETTING, Op.RESYNTHESIS}


def test_the_workers_fixed_pass_maintains_every_touched_user_each_round() -> None:
    """every_s 0: the round is the interval, whatever the event time says."""
    just_now = {op: 0.0 for op in Operation}
    touched = {op: 1 for op in (Op.CONSOLIDATION, Op.FORGETTING, Op.RESYNTHESIS)}
    (plan,) = FixedIntervalPolicy(every_s=0.0).decide([user(touched, seconds_since=just_now)])
    assert ops(plan) == {op: NOW_ for op in touched}
    assert {o.reason for o in plan.ops} == {"fixed pass: touched since the last pass"}
    (plan,) = FixedIntervalPolicy(every_s=0.0).decide([user(seconds_since=just_now)])
    assert plan.ops == ()


def test_fixed_runs_what_never_ran() -> None:
    never: dict[Operation, float | None] = {op: None for op in Operation}
    (plan,) = FixedIntervalPolicy(every_s=1e9).decide([user(EVERYTHING, seconds_since=never)])
    assert len(plan.ops) == 6


RULES = RulesPolicy()


def decide(s: UserSummary) -> dict[Operation, dict[str, Any]]:
    (plan,) = RULES.decide([s])
    assert plan.policy == "rules"
    return ops(plan)


def test_rules_do_nothing_for_a_quiet_user() -> None:
    assert decide(user()) == {}


def test_rules_absorb_only_the_operations_with_new_events() -> None:
    assert decide(user({Op.EXTRACTION: 3, Op.WEAKENING: 1})) == {
        Op.EXTRACTION: NOW_,
        Op.WEAKENING: NOW_,
    }


def test_rules_consolidate_near_duplicates() -> None:
    s = user(near_duplicate_pairs=2, chunk_count=4, profile_age_s=DAY, profile_drift=0.0)
    assert decide(s) == {Op.CONSOLIDATION: NOW_}


@pytest.mark.parametrize(
    "changes",
    [
        {"forgettable_chunks": 1, "weak_chunks": 1, "chunk_count": 3},
        {"expired_events": 4, "event_count": 10},
        {"event_count": 1001, "event_cap": 1000},
        {"idle_s": 40 * DAY, "chunk_count": 3, "seconds_since": {Op.FORGETTING: 31 * DAY}},
        {"idle_s": 40 * DAY, "chunk_count": 3, "seconds_since": {Op.FORGETTING: None}},
    ],
)
def test_rules_forget_now(changes: dict[str, Any]) -> None:
    profiled = {"profile_age_s": DAY, "profile_drift": 0.0}
    assert decide(user(**(profiled | changes))) == {Op.FORGETTING: NOW_}


def test_rules_do_not_forget_an_idle_user_again_and_again() -> None:
    recently = {op: DAY for op in Operation}
    s = user(idle_s=40 * DAY, chunk_count=3, profile_age_s=DAY, profile_drift=0.0)
    assert decide(replace(s, seconds_since=recently)) == {}


def test_rules_schedule_forgetting_for_when_the_weakest_belief_fades() -> None:
    at = NOW + 3 * DAY
    s = user(weak_chunks=2, next_forget_at=at, chunk_count=3, profile_age_s=DAY, profile_drift=0.0)
    assert decide(s) == {Op.FORGETTING: {"kind": "at", "ts": at}}
    too_far = replace(s, next_forget_at=NOW + MAX_AHEAD_S + 1)
    assert decide(too_far) == {}


def test_rules_resynthesise_a_missing_or_drifted_profile() -> None:
    assert decide(user(chunk_count=2)) == {Op.RESYNTHESIS: NOW_}  # no profile yet
    drifted = user(chunk_count=2, profile_age_s=DAY, profile_drift=0.5, contested_chunks=1)
    assert decide(drifted) == {Op.RESYNTHESIS: NOW_}
    (plan,) = RULES.decide([drifted])
    assert "contested" in plan.ops[0].reason
    slightly = user(chunk_count=2, profile_age_s=DAY, profile_drift=0.1)
    assert decide(slightly) == {Op.RESYNTHESIS: {"kind": "after_events", "n": 20}}
    assert decide(user(chunk_count=0, profile_age_s=None)) == {}  # nothing to write about


def test_rules_config_moves_the_thresholds() -> None:
    strict = RulesPolicy(RulesConfig(drift_now=0.05, resynthesis_after_events=5))
    (plan,) = strict.decide([user(chunk_count=2, profile_age_s=DAY, profile_drift=0.1)])
    assert ops(plan) == {Op.RESYNTHESIS: NOW_}


def test_one_plan_per_summary_in_order() -> None:
    many = [replace(user(EVERYTHING), user_id=f"u{i}") for i in range(5)]
    for policy in (RULES, FixedIntervalPolicy(30.0)):
        plans = policy.decide(many)
        assert [p.users for p in plans] == [(("acme", f"u{i}"),) for i in range(5)]
        assert len({p.plan_id for p in plans}) == 5
