"""``beliefstream bench planner``: how fast and how costly each policy decides.

Synthetic users (real snapshots through ``summarize``) are decided by the
``fixed`` and ``rules`` policies and by ``llm`` on the packaged SmolLM2, with a
budget large enough never to bind, so the LLM's own speed and failure modes are
what is measured (optionally also through an OpenAI-compatible endpoint). Costs
are also given per 1,000 events awaiting a decision (the events since each
user's last absorb). Quality against ``fixed`` belongs
to the replay evaluation, not here.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Console

from memory_store.tiers import Operation
from planner.backend import ChoiceBackend
from planner.budget import Budget
from planner.llm.local import LocalLLM
from planner.llm_policy import LLMPolicy
from planner.policies import FixedIntervalPolicy, RulesPolicy
from planner.summary import UserSummary
from streams.bench._planner_users import PolicyBench, bench_policy, synthetic_summaries

__all__ = ["OpenAIEndpoint", "run_planner_bench"]

# Generous: on busy shared cores one call can take tens of seconds, and a bench whose
# calls time out measures the timeout, not the model.
_LOCAL_TIMEOUT_S = 600.0


def _row(result: PolicyBench) -> dict[str, Any]:
    return {
        "decisions_per_s": round(result.decisions_per_s, 2),
        "p50_ms": round(result.p50_s * 1000, 3),
        "p99_ms": round(result.p99_s * 1000, 3),
        "ops_planned": result.ops_planned,
    }


def run_planner_bench(
    users: int,
    console: Console,
    llm_users: int = 50,
    batch: int = 4,
    cache_dir: Path | None = None,
    openai: OpenAIEndpoint | None = None,
) -> dict[str, Any]:
    """Time every policy; the LLM decides the first ``llm_users`` users only (it is slow).

    With ``openai``, the same users are also decided through that OpenAI-compatible
    endpoint (``planner.llm.openai``), e.g. ``beliefstream llm-serve`` serving the same model.
    """
    summaries = synthetic_summaries(users, seed=3)
    results: dict[str, Any] = {"users": users, "llm_users": min(llm_users, users)}
    results["fixed"] = _row(bench_policy(FixedIntervalPolicy(every_s=3600.0), summaries))
    results["rules"] = _row(bench_policy(RulesPolicy(), summaries))
    console.print("loading SmolLM2-135M-Instruct ...")
    started = time.perf_counter()
    backend = LocalLLM.load(cache_dir)
    results["llm_load_s"] = round(time.perf_counter() - started, 2)
    asked = summaries[: results["llm_users"]]
    console.print(f"llm/local deciding {len(asked)} users, {batch} per prompt ...")
    results["llm_local"] = _llm_row(backend, asked, batch, _LOCAL_TIMEOUT_S)
    if openai is not None:
        from planner.llm.openai import OpenAIBackend

        model = openai.model or _served_model(openai)
        remote = OpenAIBackend(openai.url, model, openai.api_key, openai.timeout_s)
        console.print(f"llm/openai ({openai.url}) deciding {len(asked)} users ...")
        row = _llm_row(remote, asked, batch, openai.timeout_s)
        results["llm_openai"] = row | {"url": openai.url}
    results["machine_cpus"] = os.cpu_count()
    return results


@dataclass(frozen=True, slots=True)
class OpenAIEndpoint:
    """An OpenAI-compatible chat endpoint to bench the ``openai`` backend against."""

    url: str
    model: str
    api_key: str = ""
    timeout_s: float = 600.0


def _served_model(endpoint: OpenAIEndpoint) -> str:
    """The first model the endpoint lists (what ``llm-serve`` serves) when none was named."""
    import httpx

    headers = {"Authorization": f"Bearer {endpoint.api_key}"} if endpoint.api_key else {}
    listed = httpx.get(f"{endpoint.url.rstrip('/')}/models", headers=headers, timeout=30)
    listed.raise_for_status()
    return str(listed.json()["data"][0]["id"])


def _llm_row(
    backend: ChoiceBackend, asked: Sequence[UserSummary], batch: int, timeout_s: float
) -> dict[str, Any]:
    """Speed, cost per 1,000 pending events and fallbacks of the LLM policy on ``backend``."""
    unbounded = Budget(calls_per_min=10**9, tokens_per_min=10**12)
    policy = LLMPolicy(backend, unbounded, batch_size=batch, timeout_s=timeout_s)
    row = _row(bench_policy(policy, asked, batch=batch))
    stats = policy.stats
    pending = sum(s.events_since[Operation.EXTRACTION] for s in asked) or 1
    tokens = stats.prompt_tokens + stats.completion_tokens
    return row | {
        "model": backend.model,
        "batch_users": batch,
        "llm_calls": stats.calls,
        "prompt_tokens": stats.prompt_tokens,
        "completion_tokens": stats.completion_tokens,
        "llm_plans": stats.llm_plans,
        "idle_plans": stats.idle_plans,
        "fallback_plans": stats.fallback_plans,
        "fallback_rate": round(stats.fallback_plans / max(len(asked), 1), 4),
        "fallbacks": dict(stats.fallbacks),
        "events_pending": pending,
        "llm_calls_per_1k_events": round(1000 * stats.calls / pending, 3),
        "tokens_per_1k_events": round(1000 * tokens / pending, 1),
    }
