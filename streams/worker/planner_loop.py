"""The planner loop in the worker: summaries in, plans decided, operations run or scheduled.

Every ``maintain_every_s`` the writer child summarises the users touched since
the last round; the policy (rules, or the LLM within its budget, falling back to
rules) decides per user off the event loop; operations due now run in the
writer child at once, "after N events" waits there for the user's events, and
"at time" goes to the persistent per-partition scheduler. Each plan and each
outcome is published to the plans topic, and every change the operations make
carries the plan id into the change log.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from planner.budget import Budget
from planner.llm_policy import LLMPolicy
from planner.plan import AfterEvents, At, Now, Plan
from planner.policies import MAINTAIN_OPS, FixedIntervalPolicy, Policy, RulesPolicy
from planner.state import Deferred, Request, request_for
from planner.summary import UserSummary
from streams.settings import Settings, reveal
from streams.worker.ports import PlannerPort
from streams.worker.scheduler import PlanScheduler, ScheduledOp, partition_for
from streams.worker.writer.outcomes import Notice, RoundOutcome

__all__ = ["PlannerLoop", "build_policy"]

log = logging.getLogger(__name__)


def build_policy(settings: Settings) -> Policy:
    """The configured policy: fixed, rules, or the LLM (local model or an OpenAI-compatible URL).

    ``fixed`` is the baseline: each round maintains every user touched since the last.
    """
    if settings.policy == "fixed":
        return FixedIntervalPolicy(every_s=0.0)
    if settings.policy == "rules":
        return RulesPolicy()
    if settings.policy != "llm":
        raise ValueError(f"unknown planner policy {settings.policy!r}")
    from pathlib import Path

    if settings.llm_backend == "openai":
        from planner.llm.openai import OpenAIBackend

        backend: Any = OpenAIBackend(
            settings.llm_url,
            settings.llm_model,
            reveal(settings.llm_api_key),
            settings.llm_timeout_s,
        )
    else:
        from planner.llm.local import LocalLLM

        cache = None if settings.llm_cache_dir is None else Path(settings.llm_cache_dir)
        backend = LocalLLM.load(cache)
    budget = Budget(settings.llm_calls_per_min, settings.llm_tokens_per_min)
    # A round's decisions take at most one round interval: rounds stay on time.
    return LLMPolicy(
        backend,
        budget,
        batch_size=settings.llm_users_per_call,
        timeout_s=settings.llm_timeout_s,
        round_s=settings.maintain_every_s,
    )


def _plan_message(plan: Plan, decided_at: float) -> tuple[bytes, bytes]:
    body = {"type": "plan", "decided_at": decided_at, **plan.model_dump(mode="json")}
    return plan.plan_id.encode(), json.dumps(body, separators=(",", ":")).encode()


def _outcomes(
    requests: Sequence[Request], notices: Sequence[Notice]
) -> list[tuple[bytes, bytes, None]]:
    """One outcome message per operation run: did its user's memory change."""
    changed = {(t, u) for t, u, _ in notices}
    return [
        (plan_id.encode(), json.dumps({
            "type": "outcome", "plan_id": plan_id, "tenant": t, "user_id": u, "op": op,
            "changed": (t, u) in changed, "ran_at": time.time(),
        }).encode(), None)
        for t, u, op, _, plan_id, _ in requests
    ]  # fmt: skip


class PlannerLoop:
    """One worker's planner: decides in a thread, runs in the writer, schedules the rest."""

    def __init__(self, worker: PlannerPort, policy: Policy | None = None) -> None:
        self.worker = worker
        self.settings = worker.settings
        self._policy = policy
        self._decider = ThreadPoolExecutor(1, thread_name_prefix="planner")
        self._loop: asyncio.AbstractEventLoop | None = None
        self.scheduler = PlanScheduler(self.settings.job_store_url, self._fired)
        self._plans_topic = worker.raw_topic(self.settings.topic_plans)
        self._seen: dict[str, int] = {}

    def own(self, partitions: set[int]) -> None:
        """Only the owner of a user's partition runs or schedules that user's operations.

        Called from the rebalance callback, on the event loop: overdue jobs of the
        partitions just opened fire at once and need that loop.
        """
        self._loop = asyncio.get_running_loop()
        self.scheduler.own(partitions)
        self.worker.metrics.scheduled_ops.set(self.scheduler.pending())

    def _policy_now(self) -> Policy:
        if self._policy is None:  # the local model loads in seconds: not in __init__
            self._policy = build_policy(self.settings)
        return self._policy

    async def tick(self) -> None:
        """One round: decide for the touched users, run what is due, schedule the rest.

        With event-time rounds (fixed, rules) the writer runs the rounds as events
        cross them; here only quiet partitions have their open round closed.
        """
        self._loop = asyncio.get_running_loop()
        writer = self.worker.writer
        if self.settings.event_rounds:
            # A partition still behind is starved by the consumer, not quiet: never closed early.
            caught_up = {p for p, lag in self.worker.lag.items() if lag == 0}
            idle_s = self.settings.round_idle_s
            idle = await asyncio.wrap_future(writer.close_idle(idle_s, caught_up))
            await self.publish_rounds(idle)
            return
        round_ = await asyncio.wrap_future(writer.plan_round())
        if round_.notices:
            await self.worker.publish_notices(round_.notices)
        plans: list[Plan] = []
        if round_.summaries:
            policy = await self._loop.run_in_executor(self._decider, self._policy_now)
            plans = await self._loop.run_in_executor(self._decider, policy.decide, round_.summaries)
            self._count_llm(policy)
        now_requests, deferred = self._route(plans, round_.summaries)
        decided_at = time.time()
        await self.worker.send_all(
            self._plans_topic, [(*_plan_message(p, decided_at), None) for p in plans]
        )
        await self._run(list(round_.due) + now_requests, deferred)

    def _route(
        self, plans: Sequence[Plan], summaries: Sequence[UserSummary]
    ) -> tuple[list[Request], list[Deferred]]:
        """Operations to run now, to wait for events, and (scheduled here) to run later."""
        metrics = self.worker.metrics
        now_requests: list[Request] = []
        deferred: list[Deferred] = []
        scheduled: set[str] | None = None  # read once, and only if an operation runs now
        for plan, s in zip(plans, summaries, strict=True):
            metrics.plans.labels(plan.policy).inc()
            for op in plan.ops:
                metrics.planned_ops.labels(op.op.value, op.when.kind).inc()
                if op.op not in MAINTAIN_OPS:
                    continue  # absorb ran with the batch; nothing to do later
                request = request_for(plan, op)
                when = op.when
                partition = partition_for(op.user_id.encode(), self.settings.partitions)
                later = ScheduledOp(op.tenant, op.user_id, op.op.value, plan.plan_id,
                                    dict(op.args), request[5])  # fmt: skip
                if isinstance(when, Now):
                    now_requests.append(request)
                    scheduled = self.scheduler.job_ids() if scheduled is None else scheduled
                    if later.job_id in scheduled:  # running now settles a later schedule
                        self.scheduler.cancel(later, partition)
                elif isinstance(when, AfterEvents):
                    deferred.append(Deferred(request, when.n))
                elif isinstance(when, At) and not self.scheduler.schedule(
                    later, partition, when.ts - s.now
                ):
                    log.warning("not scheduling %s: partition %d moved", op.user_id, partition)
        metrics.scheduled_ops.set(self.scheduler.pending())
        return now_requests, deferred

    async def publish_rounds(self, rounds: Sequence[RoundOutcome]) -> None:
        """Publish the plans and outcomes of rounds the writer ran, and count them."""
        metrics = self.worker.metrics
        for r in rounds:
            metrics.rounds.labels("idle" if r.idle else "boundary").inc()
            for plan in r.plans:
                metrics.plans.labels(plan.policy).inc()
                for op in plan.ops:
                    metrics.planned_ops.labels(op.op.value, op.when.kind).inc()
            decided_at = time.time()
            await self.worker.send_all(
                self._plans_topic, [(*_plan_message(p, decided_at), None) for p in r.plans]
            )
            await self.worker.publish_notices(r.maintained.notices)
            await self.worker.send_all(self._plans_topic, _outcomes(r.ran, r.maintained.notices))
            self.worker.record_maintenance(r.maintained)

    def _count_llm(self, policy: Policy) -> None:
        """Move the LLM policy's running totals into the metrics."""
        if not isinstance(policy, LLMPolicy):
            return
        stats, seen, m = policy.stats, self._seen, self.worker.metrics
        for name, value in (
            ("calls", stats.calls),
            ("prompt", stats.prompt_tokens),
            ("completion", stats.completion_tokens),
        ):
            delta = value - seen.get(name, 0)
            seen[name] = value
            if name == "calls":
                m.llm_calls.inc(delta)
            else:
                m.llm_tokens.labels(name).inc(delta)
        for latency in stats.latencies_s[seen.get("latencies", 0) :]:
            m.llm_latency.observe(latency)
        seen["latencies"] = len(stats.latencies_s)
        for cause, count in stats.fallbacks.items():
            key = f"fallback:{cause}"
            m.plan_fallbacks.labels(cause).inc(count - seen.get(key, 0))
            seen[key] = count

    async def _run(self, requests: list[Request], deferred: list[Deferred]) -> None:
        if not requests and not deferred:
            return
        outcome = await asyncio.wrap_future(self.worker.writer.run_planned(requests, deferred))
        await self.worker.publish_notices(outcome.notices)
        await self.worker.send_all(self._plans_topic, _outcomes(requests, outcome.notices))
        self.worker.record_maintenance(outcome)

    def _fired(self, op: ScheduledOp) -> None:
        """A scheduled operation came due (scheduler thread): run it on the worker's loop."""
        if self._loop is None:
            raise RuntimeError("scheduled operation fired before the planner's first round")
        request: Request = (op.tenant, op.user_id, op.op, op.args, op.plan_id, op.why)
        done = asyncio.run_coroutine_threadsafe(self._run([request], []), self._loop)
        done.result(timeout=600)
        self.worker.metrics.scheduled_ops.set(self.scheduler.pending())

    def close(self) -> None:
        self.scheduler.shutdown()
        self._decider.shutdown(wait=False, cancel_futures=True)
