"""The LLM policy: several users in one call, each decision picked from a menu.

The prompt (instructions and a worked example) never changes, so a backend can
keep it computed; the users follow as a scripted answer in which each operation
worth asking about gets one line of facts from the summary and a choice point
from ``WHEN_MENU``. The picks become a raw plan that goes through
``validate_plan`` like any other; a rejected plan, an error, a timeout or a
spent budget hands the user to the fallback policy, counted by cause.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from memory_store.tiers import Operation
from planner.backend import Choice, ChoiceBackend
from planner.budget import Budget
from planner.plan import Plan, PlanRejection, RejectionKind, new_plan, validate_plan
from planner.policies import ABSORB_OPS, Policy, RulesPolicy
from planner.summary import UserSummary, op_facts, user_header

__all__ = [
    "SYSTEM_PROMPT",
    "USER_PROMPT",
    "WHEN_MENU",
    "LLMPolicy",
    "LLMStats",
    "WhenOption",
    "eligible_ops",
]

SYSTEM_PROMPT = """You schedule memory upkeep for a recommender system. For each user you \
see, per operation, the facts that matter; answer each with one word:
no = do not run it
now = run it now
soon = after 20 more events
later = after 200 more events
hour = in one hour
tomorrow = in one day
extraction, reinforcement and weakening turn new events into beliefs; consolidation merges \
duplicate beliefs; forgetting drops faded beliefs and expired events; resynthesis rewrites \
the profile from the strongest beliefs. Answer now when the facts show work to do, no when \
they show none.

Example:
user 1 (8 beliefs, 30 events, idle 2.0d)
extraction, 12 new events: now
reinforcement, 12 new events: now
weakening, 12 new events: now
consolidation, no duplicate pairs: no
forgetting, no faded, no weak, no expired: no
resynthesis, profile drift 0.40: now
user 2 (3 beliefs, 9 events, idle 9.0d)
consolidation, 2 duplicate pairs: now
forgetting, no faded, 2 weak, no expired: tomorrow
resynthesis, profile drift 0.10: soon
user 3 (5 beliefs, 40 events, idle 1.0d)
extraction, no new events: no
consolidation, no duplicate pairs: no
forgetting, 3 faded, no weak, no expired: now
resynthesis, profile up to date: no"""

USER_PROMPT = "Plan the next users."


@dataclass(frozen=True, slots=True)
class WhenOption:
    """One menu entry: the word the model writes and the ``when`` it stands for."""

    label: str
    kind: str  # "no" | "now" | "after_events" | "in"
    value: float = 0.0

    def raw(self, now: float) -> dict[str, Any] | None:
        """The raw ``when`` of a plan (None: do not run), left for validation to judge."""
        if self.kind == "no":
            return None
        if self.kind == "after_events":
            return {"kind": "after_events", "n": int(self.value)}
        if self.kind == "in":
            return {"kind": "at", "ts": now + self.value}
        return {"kind": self.kind}


# Labels differ in their first token, so each decision costs one forward pass.
WHEN_MENU: tuple[WhenOption, ...] = (
    WhenOption(" no", "no"),
    WhenOption(" now", "now"),
    WhenOption(" soon", "after_events", 20),
    WhenOption(" later", "after_events", 200),
    WhenOption(" hour", "in", 3_600.0),
    WhenOption(" tomorrow", "in", 86_400.0),
)


def eligible_ops(s: UserSummary) -> list[Operation]:
    """Operations that could change this user's memory at all: the only ones worth asking."""
    ops = [op for op in ABSORB_OPS if s.events_since[op] > 0]
    if s.chunk_count >= 2:
        ops.append(Operation.CONSOLIDATION)
    if s.chunk_count > 0 or s.event_count > 0:
        ops.append(Operation.FORGETTING)
    if s.chunk_count > 0 or s.profile_age_s is not None:
        ops.append(Operation.RESYNTHESIS)
    return ops


@dataclass
class LLMStats:
    """What the LLM policy cost and how often it had to fall back, by cause."""

    calls: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    latencies_s: list[float] = field(default_factory=list)
    llm_plans: int = 0
    idle_plans: int = 0  # users with nothing the model could change: no call needed
    fallback_plans: int = 0
    fallbacks: Counter[str] = field(default_factory=Counter)


# One user in a batch: its position in the caller's list, its summary, the ops asked about.
_Asked = tuple[int, UserSummary, list[Operation]]


class LLMPolicy:
    """Plans from an LLM ``backend`` within ``budget``; ``fallback`` decides when it cannot."""

    def __init__(
        self,
        backend: ChoiceBackend,
        budget: Budget,
        fallback: Policy | None = None,
        batch_size: int = 4,
        timeout_s: float | None = 30.0,
        menu: tuple[WhenOption, ...] = WHEN_MENU,
        round_s: float | None = None,
    ) -> None:
        if batch_size < 1:
            raise ValueError("batch_size must be >= 1")
        self.backend = backend
        self.budget = budget
        self.fallback = fallback or RulesPolicy()
        self.batch_size = batch_size
        self.timeout_s = timeout_s
        self.menu = menu
        # One ``decide`` call starts no model call after this long (the one running may
        # finish); the users it did not reach go to the fallback ("deadline"), so a
        # planner round stays on time however slow the model.
        self.round_s = round_s
        self.stats = LLMStats()

    @property
    def name(self) -> str:
        return "llm"

    def decide(self, summaries: Sequence[UserSummary]) -> list[Plan]:
        plans: dict[int, Plan] = {}
        asked: list[_Asked] = []
        for i, s in enumerate(summaries):
            ops = eligible_ops(s)
            if ops:
                asked.append((i, s, ops))
            else:
                plans[i] = new_plan(self.name, [s.key], [], s.now, self.backend.model)
                self.stats.idle_plans += 1
        deadline = None if self.round_s is None else time.monotonic() + self.round_s
        for start in range(0, len(asked), self.batch_size):
            batch = asked[start : start + self.batch_size]
            if deadline is not None and time.monotonic() >= deadline:
                decided = [self._fall_back(s, "deadline") for _, s, _ in batch]
            else:
                decided = self._decide_batch(batch)
            for (i, _, _), plan in zip(batch, decided, strict=True):
                plans[i] = plan
        return [plans[i] for i in range(len(summaries))]

    def _fall_back(self, s: UserSummary, cause: str) -> Plan:
        self.stats.fallbacks[cause] += 1
        self.stats.fallback_plans += 1
        ops = self.fallback.decide([s])[0].ops
        return new_plan(self.fallback.name, [s.key], ops, s.now, fallback=cause)

    def _script(self, batch: Sequence[_Asked]) -> list[str | Choice]:
        labels = Choice(tuple(o.label for o in self.menu))
        script: list[str | Choice] = []
        for n, (_, s, ops) in enumerate(batch):
            script.append(("" if n == 0 else "\n") + user_header(s, f"user {n + 1}"))
            for op in ops:
                script += [f"\n{op.value}, {op_facts(s, op)}:", labels]
        return script

    def _decide_batch(self, batch: Sequence[_Asked]) -> list[Plan]:
        script = self._script(batch)
        try:
            tokens = self.backend.max_tokens(SYSTEM_PROMPT, USER_PROMPT, script)
        except Exception:  # a backend that cannot even count: treat as its failure
            return [self._fall_back(s, "error") for _, s, _ in batch]
        if not self.budget.try_spend(1, tokens):
            return [self._fall_back(s, "budget") for _, s, _ in batch]
        started = time.perf_counter()
        try:
            result = self.backend.choose(SYSTEM_PROMPT, USER_PROMPT, script, self.timeout_s)
        except TimeoutError:
            cause = "timeout"
        except Exception:  # any backend failure: the stream goes on with the fallback
            cause = "error"
        else:
            cause = ""
            self.stats.prompt_tokens += result.prompt_tokens
            self.stats.completion_tokens += result.completion_tokens
        finally:
            self.stats.calls += 1
            self.stats.latencies_s.append(time.perf_counter() - started)
        if cause:
            return [self._fall_back(s, cause) for _, s, _ in batch]
        plans: list[Plan] = []
        offset = 0
        for _, s, ops in batch:
            plans.append(self._plan(s, ops, result.picks[offset : offset + len(ops)]))
            offset += len(ops)
        return plans

    def _plan(self, s: UserSummary, ops: Sequence[Operation], picks: Sequence[int]) -> Plan:
        """The user's picks as a raw plan, validated like any plan from outside."""
        if len(picks) != len(ops):
            return self._fall_back(s, f"invalid:{RejectionKind.MALFORMED.value}")
        raw_ops: list[Any] = []
        for op, pick in zip(ops, picks, strict=True):
            option = self.menu[pick] if 0 <= pick < len(self.menu) else None
            when = option.raw(s.now) if option is not None else {"kind": f"pick {pick}"}
            if when is None:
                continue
            label = option.label.strip() if option is not None else "?"
            raw_ops.append(
                {
                    "op": op.value,
                    "tenant": s.tenant,
                    "user_id": s.user_id,
                    "when": when,
                    "reason": f"model chose '{label}' ({op_facts(s, op)})",
                }
            )
        raw: dict[str, Any] = {"plan_id": "pending", "policy": self.name, "users": [list(s.key)]}
        raw |= {"model": self.backend.model, "ops": raw_ops}
        checked = validate_plan(raw, {s.key}, s.now)
        if isinstance(checked, PlanRejection):
            return self._fall_back(s, f"invalid:{checked.kind.value}")
        self.stats.llm_plans += 1
        return new_plan(self.name, [s.key], checked.ops, s.now, self.backend.model)
