"""The LLM policy around a scripted fake backend: batching, budget, every fallback path."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any

import pytest

from memory_store.operations import LifecycleParams
from memory_store.tiers import Operation, UserSnapshot
from planner.backend import Choice, ChoiceResult, Script
from planner.budget import Budget
from planner.llm_policy import WHEN_MENU, LLMPolicy, WhenOption, eligible_ops
from planner.plan import Plan, validate_plan
from planner.policies import RulesPolicy
from planner.summary import OperationClock, UserSummary, summarize
from streams.bench._planner_users import bench_policy, synthetic_summaries

NOW = 1_700_000_000.0
Op = Operation
QUIET = summarize(UserSnapshot("acme", "u0"), OperationClock(), NOW, LifecycleParams())


def user(i: int, **changes: Any) -> UserSummary:
    """A user with new events for every op, 3 beliefs and a drifted profile: six questions."""
    base = replace(
        QUIET,
        user_id=f"u{i}",
        events_since={op: 4 for op in Operation},
        chunk_count=3,
        near_duplicate_pairs=1,
        profile_age_s=60.0,
        profile_drift=0.5,
    )
    return replace(base, **changes)


class FakeBackend:
    """Answers every choice with ``pick(n)`` (n counts choice points); records each call."""

    def __init__(self, pick: Callable[[int], int] = lambda n: 1, fail: Exception | None = None):
        self.pick = pick
        self.fail = fail
        self.scripts: list[Script] = []

    @property
    def model(self) -> str:
        return "fake-1"

    def max_tokens(self, system: str, user: str, script: Script) -> int:
        return 100

    def choose(
        self, system: str, user: str, script: Script, timeout_s: float | None = None
    ) -> ChoiceResult:
        self.scripts.append(script)
        if self.fail is not None:
            raise self.fail
        n = sum(isinstance(p, Choice) for p in script)
        return ChoiceResult(tuple(self.pick(i) for i in range(n)), 50, 2 * n, 0.01)


def unlimited() -> Budget:
    return Budget(10**6, 10**9)


def valid(plan: Plan, s: UserSummary) -> None:
    assert isinstance(validate_plan(plan.model_dump(mode="json"), {s.key}, s.now), Plan)


def test_the_picks_become_one_valid_plan_per_user() -> None:
    menu = [o.label.strip() for o in WHEN_MENU]
    assert menu == ["no", "now", "soon", "later", "hour", "tomorrow"]
    users = [user(i) for i in range(6)]
    backend = FakeBackend(pick=lambda n: n % 6)
    policy = LLMPolicy(backend, unlimited(), batch_size=4)
    plans = policy.decide(users)
    assert len(backend.scripts) == 2  # 4 users, then 2
    assert [p.users for p in plans] == [(u.key,) for u in users]
    for plan, s in zip(plans, users, strict=True):
        assert plan.policy == "llm" and plan.model == "fake-1" and plan.fallback is None
        valid(plan, s)
    # First user: picks 0..5 over its six ops, in lifecycle order; "no" drops extraction.
    first = {o.op: o.when.model_dump() for o in plans[0].ops}
    assert first == {
        Op.REINFORCEMENT: {"kind": "now"},
        Op.WEAKENING: {"kind": "after_events", "n": 20},
        Op.CONSOLIDATION: {"kind": "after_events", "n": 200},
        Op.FORGETTING: {"kind": "at", "ts": NOW + 3_600},
        Op.RESYNTHESIS: {"kind": "at", "ts": NOW + 86_400},
    }
    assert plans[0].ops[0].reason == "model chose 'now' (4 new events)"
    assert policy.stats.calls == 2 and policy.stats.llm_plans == 6
    assert policy.stats.prompt_tokens == 100 and policy.stats.completion_tokens == 2 * 36
    assert len(policy.stats.latencies_s) == 2 and not policy.stats.fallbacks


def test_the_script_asks_only_what_could_change_something() -> None:
    s = user(1, events_since={op: 0 for op in Operation} | {Op.WEAKENING: 2}, chunk_count=1)
    assert eligible_ops(s) == [Op.WEAKENING, Op.FORGETTING, Op.RESYNTHESIS]
    backend = FakeBackend()
    LLMPolicy(backend, unlimited()).decide([s])
    (script,) = backend.scripts
    text = "".join(p for p in script if isinstance(p, str))
    assert text.startswith("user 1 (1 beliefs, 0 events")
    assert "\nweakening, 2 new events:" in text and "consolidation" not in text
    assert "\nresynthesis, profile drift 0.50:" in text


def test_users_with_nothing_to_decide_cost_no_call() -> None:
    backend = FakeBackend()
    policy = LLMPolicy(backend, Budget(0, 0))
    (plan,) = policy.decide([QUIET])
    assert plan.ops == () and plan.policy == "llm" and plan.fallback is None
    assert backend.scripts == [] and policy.stats.idle_plans == 1 and policy.stats.calls == 0


def test_a_spent_budget_hands_the_users_to_rules() -> None:
    backend = FakeBackend()
    policy = LLMPolicy(backend, Budget(calls_per_min=1, tokens_per_min=10**6), batch_size=2)
    users = [user(i) for i in range(4)]
    plans = policy.decide(users)
    assert [p.policy for p in plans] == ["llm", "llm", "rules", "rules"]
    assert [p.fallback for p in plans] == [None, None, "budget", "budget"]
    assert plans[2].ops == RulesPolicy().decide([users[2]])[0].ops
    assert policy.stats.fallbacks == {"budget": 2} and policy.stats.calls == 1
    assert len(backend.scripts) == 1


class SlowBackend(FakeBackend):
    """Takes ``seconds`` per call (advancing a fake clock) and records each call's timeout."""

    def __init__(self, clock: list[float], seconds: float) -> None:
        super().__init__()
        self.clock, self.seconds = clock, seconds
        self.timeouts: list[float | None] = []

    def choose(
        self, system: str, user: str, script: Script, timeout_s: float | None = None
    ) -> ChoiceResult:
        self.timeouts.append(timeout_s)
        self.clock[0] += self.seconds
        return super().choose(system, user, script, timeout_s)


def test_a_round_asks_the_model_only_until_its_deadline(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = [100.0]
    monkeypatch.setattr("planner.llm_policy.time.monotonic", lambda: clock[0])
    backend = SlowBackend(clock, seconds=4.0)
    policy = LLMPolicy(backend, unlimited(), batch_size=2, timeout_s=30.0, round_s=10.0)
    users = [user(i) for i in range(8)]
    plans = policy.decide(users)
    # Calls start at t=0, 4 and 8; the one at 8 may finish (12 > 10); none starts after.
    assert backend.timeouts == [30.0, 30.0, 30.0]
    assert [p.fallback for p in plans] == [None] * 6 + ["deadline"] * 2
    assert [p.policy for p in plans[6:]] == ["rules", "rules"]
    assert plans[7].ops == RulesPolicy().decide([users[7]])[0].ops
    assert policy.stats.fallbacks == {"deadline": 2} and policy.stats.calls == 3
    # Without a round limit the same backend is asked about everyone.
    unbounded = LLMPolicy(SlowBackend(clock, 4.0), unlimited(), batch_size=2, timeout_s=30.0)
    assert all(p.fallback is None for p in unbounded.decide(users))


def test_a_call_larger_than_the_token_budget_is_not_made() -> None:
    policy = LLMPolicy(FakeBackend(), Budget(calls_per_min=10, tokens_per_min=99))
    (plan,) = policy.decide([user(1)])
    assert plan.fallback == "budget"


@pytest.mark.parametrize(
    ("fail", "cause"),
    [(TimeoutError("slow"), "timeout"), (RuntimeError("boom"), "error"), (MemoryError(), "error")],
)
def test_backend_failures_fall_back_and_are_counted(fail: Exception, cause: str) -> None:
    policy = LLMPolicy(FakeBackend(fail=fail), unlimited(), batch_size=3)
    plans = policy.decide([user(i) for i in range(3)])
    assert {p.fallback for p in plans} == {cause} and {p.policy for p in plans} == {"rules"}
    assert policy.stats.fallbacks == {cause: 3} and policy.stats.calls == 1
    for plan, i in zip(plans, range(3), strict=True):
        valid(plan, user(i))


def test_a_backend_that_cannot_count_tokens_falls_back() -> None:
    class Broken(FakeBackend):
        def max_tokens(self, system: str, user: str, script: Script) -> int:
            raise OSError("tokenizer gone")

    policy = LLMPolicy(Broken(), unlimited())
    assert policy.decide([user(1)])[0].fallback == "error"


def test_out_of_range_picks_are_rejected_and_counted() -> None:
    policy = LLMPolicy(FakeBackend(pick=lambda n: 99 if n == 2 else 1), unlimited(), batch_size=2)
    plans = policy.decide([user(1), user(2)])
    # Only the first user's third answer is bad: that user falls back, the other does not.
    assert [p.fallback for p in plans] == ["invalid:bad_when", None]
    assert policy.stats.fallbacks == {"invalid:bad_when": 1} and policy.stats.llm_plans == 1


def test_too_few_picks_are_rejected_as_malformed() -> None:
    class Short(FakeBackend):
        def choose(
            self, system: str, user: str, script: Script, timeout_s: float | None = None
        ) -> ChoiceResult:
            return ChoiceResult((1,), 10, 1, 0.0)

    policy = LLMPolicy(Short(), unlimited())
    assert policy.decide([user(1)])[0].fallback == "invalid:malformed"


@pytest.mark.parametrize(
    ("option", "cause"),
    [
        (WhenOption(" never", "after_events", 0), "invalid:bad_when"),
        (WhenOption(" eventually", "in", 90 * 86_400.0), "invalid:bad_when"),
        (WhenOption(" sometime", "whenever"), "invalid:bad_when"),
    ],
)
def test_a_bad_menu_entry_is_caught_by_validation(option: WhenOption, cause: str) -> None:
    policy = LLMPolicy(FakeBackend(pick=lambda n: 1), unlimited(), menu=(WHEN_MENU[0], option))
    (plan,) = policy.decide([user(1)])
    assert plan.fallback == cause and plan.policy == "rules"


def test_bad_settings() -> None:
    with pytest.raises(ValueError):
        LLMPolicy(FakeBackend(), unlimited(), batch_size=0)
    with pytest.raises(ValueError):
        Choice(("a", "a"))


def test_bench_harness_on_synthetic_users() -> None:
    users = synthetic_summaries(30, seed=3)
    assert users == synthetic_summaries(30, seed=3)
    assert any(u.near_duplicate_pairs for u in users) and any(u.forgettable_chunks for u in users)
    result = bench_policy(RulesPolicy(), users)
    assert result.decisions == 30 and result.p99_s >= result.p50_s >= 0
    llm = LLMPolicy(FakeBackend(), unlimited())
    result = bench_policy(llm, users, batch=4)
    assert result.policy == "llm" and result.ops_planned > 0
