"""The planner: decides per user which lifecycle operations run, and when (MARS's scheduler).

Pure parts only here (summaries, the plan schema, policies, the budget); the local
LLM backend lives in ``planner.llm.local`` and is imported on demand, since it
pulls in torch and transformers.
"""

from __future__ import annotations

from planner.backend import Choice, ChoiceBackend, ChoiceResult, Script
from planner.budget import Budget
from planner.llm_policy import WHEN_MENU, LLMPolicy, LLMStats, WhenOption, eligible_ops
from planner.plan import (
    ALLOWED_ARGS,
    MAX_AHEAD_S,
    MAX_OPS,
    AfterEvents,
    At,
    Now,
    Plan,
    PlannedOp,
    PlanRejection,
    RejectionKind,
    When,
    new_plan,
    params_for,
    validate_plan,
)
from planner.policies import FixedIntervalPolicy, Policy, RulesConfig, RulesPolicy
from planner.summary import (
    LastRun,
    OperationClock,
    UserSummary,
    op_facts,
    render_summary,
    summarize,
    user_header,
)

__all__ = [
    "ALLOWED_ARGS",
    "MAX_AHEAD_S",
    "MAX_OPS",
    "WHEN_MENU",
    "AfterEvents",
    "At",
    "Budget",
    "Choice",
    "ChoiceBackend",
    "ChoiceResult",
    "FixedIntervalPolicy",
    "LLMPolicy",
    "LLMStats",
    "LastRun",
    "Now",
    "OperationClock",
    "Plan",
    "PlanRejection",
    "PlannedOp",
    "Policy",
    "RejectionKind",
    "RulesConfig",
    "RulesPolicy",
    "Script",
    "UserSummary",
    "When",
    "WhenOption",
    "eligible_ops",
    "new_plan",
    "op_facts",
    "params_for",
    "render_summary",
    "summarize",
    "user_header",
    "validate_plan",
]
