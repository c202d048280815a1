"""The plan validator: accepts well-formed plans and rejects every kind of bad one."""

from __future__ import annotations

import json
from typing import Any

import pytest

from memory_store.operations import LifecycleParams
from memory_store.tiers import Operation
from planner.plan import (
    MAX_AHEAD_S,
    MAX_OPS,
    Now,
    Plan,
    PlannedOp,
    PlanRejection,
    RejectionKind,
    new_plan,
    params_for,
    validate_plan,
)

NOW = 1_700_000_000.0
ME = ("acme", "u1")
SCOPE = {ME, ("acme", "u2")}


def op(**changes: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "op": "consolidation",
        "tenant": "acme",
        "user_id": "u1",
        "args": {},
        "when": {"kind": "now"},
        "reason": "two duplicates",
    }
    return base | changes


def plan(*ops: dict[str, Any], **changes: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "plan_id": "p1",
        "policy": "llm",
        "model": "m",
        "users": [list(ME)],
        "ops": list(ops) or [op()],
    }
    return base | changes


def rejected(raw: Any, users: Any = SCOPE, **kw: Any) -> RejectionKind:
    out = validate_plan(raw, users, NOW, **kw)
    assert isinstance(out, PlanRejection), out
    assert out.reason
    return out.kind


def test_a_good_plan_passes_as_dict_and_as_json() -> None:
    raw = plan(
        op(),
        op(op="forgetting", args={"forget_threshold": 0.1}, when={"kind": "at", "ts": NOW + 60}),
        op(op="resynthesis", args={"narrative_top_k": 5}, when={"kind": "after_events", "n": 20}),
    )
    for form in (raw, json.dumps(raw), json.dumps(raw).encode()):
        out = validate_plan(form, SCOPE, NOW)
        assert isinstance(out, Plan)
        assert [o.op for o in out.ops] == [
            Operation.CONSOLIDATION,
            Operation.FORGETTING,
            Operation.RESYNTHESIS,
        ]
        assert out.ops[2].when.model_dump() == {"kind": "after_events", "n": 20}


def test_every_operation_is_accepted_without_args() -> None:
    out = validate_plan(plan(*(op(op=o.value) for o in Operation)), SCOPE, NOW)
    assert isinstance(out, Plan) and len(out.ops) == 6


def test_a_plan_that_decides_nothing_is_valid() -> None:
    assert isinstance(validate_plan(plan(ops=[]), SCOPE, NOW), Plan)


@pytest.mark.parametrize("raw", ["{not json", "", b"\xff\xfe", "[1, 2]", "42", "null"])
def test_malformed(raw: str | bytes) -> None:
    assert rejected(raw) is RejectionKind.MALFORMED


@pytest.mark.parametrize(
    "raw",
    [
        {k: v for k, v in plan().items() if k != "plan_id"},
        plan(surprise=1),
        plan(users=[]),
        plan(ops="consolidation"),
        plan(op(user_id="")),
        plan(op(reason="x" * 301)),
        plan(op(extra="field")),
    ],
)
def test_schema(raw: dict[str, Any]) -> None:
    assert rejected(raw) is RejectionKind.SCHEMA


@pytest.mark.parametrize("name", ["compaction", "CONSOLIDATION", "", "delete_user", 3])
def test_unknown_operation(name: object) -> None:
    assert rejected(plan(op(op=name))) is RejectionKind.UNKNOWN_OP


@pytest.mark.parametrize(
    "raw",
    [
        plan(op(user_id="u9"), users=[["acme", "u9"]]),  # a user outside the caller's scope
        plan(op(tenant="other"), users=[["other", "u1"]]),  # same user id, another tenant
        plan(op(user_id="u2")),  # in scope, but not one of this plan's users
        plan(users=[list(ME), ["acme", "u9"]]),
    ],
)
def test_foreign_user(raw: dict[str, Any]) -> None:
    assert rejected(raw) is RejectionKind.FOREIGN_USER


@pytest.mark.parametrize(
    ("name", "args"),
    [
        ("consolidation", {"similarity_threshold": 0.4}),
        ("consolidation", {"similarity_threshold": 1.01}),
        ("consolidation", {"forget_threshold": 0.1}),  # another op's arg
        ("forgetting", {"forget_threshold": 0.6}),
        ("forgetting", {"forget_threshold": -0.1}),
        ("resynthesis", {"narrative_top_k": 2.5}),
        ("resynthesis", {"narrative_top_k": 0}),
        ("extraction", {"min_weight": float("nan")}),
        ("weakening", {"flip_threshold": "0.1"}),
        ("reinforcement", {"reinforcement_rate": True}),
    ],
)
def test_bad_args(name: str, args: dict[str, Any]) -> None:
    assert rejected(plan(op(op=name, args=args))) is RejectionKind.BAD_ARGS


@pytest.mark.parametrize(
    "when",
    [
        {"kind": "at", "ts": NOW - 1},
        {"kind": "at", "ts": NOW + MAX_AHEAD_S + 1},
        {"kind": "at", "ts": "tomorrow"},
        {"kind": "after_events", "n": 0},
        {"kind": "after_events", "n": 10_001},
        {"kind": "after_events", "n": 2.5},
        {"kind": "after_events"},
        {"kind": "whenever"},
        {"kind": "now", "n": 3},
        "now",
    ],
)
def test_bad_when(when: Any) -> None:
    assert rejected(plan(op(when=when))) is RejectionKind.BAD_WHEN


def test_when_bounds_are_inclusive() -> None:
    for when in (
        {"kind": "at", "ts": NOW},
        {"kind": "at", "ts": NOW + MAX_AHEAD_S},
        {"kind": "after_events", "n": 1},
        {"kind": "after_events", "n": 10_000},
    ):
        assert isinstance(validate_plan(plan(op(when=when)), SCOPE, NOW), Plan)


def test_too_many_ops() -> None:
    assert rejected(plan(*[op()] * (MAX_OPS + 1))) is RejectionKind.TOO_MANY_OPS
    assert rejected(plan(op(), op()), max_ops=1) is RejectionKind.TOO_MANY_OPS
    assert isinstance(validate_plan(plan(*[op()] * MAX_OPS), SCOPE, NOW), Plan)


def test_new_plan_ids_are_content_hashes() -> None:
    a = new_plan("rules", [ME], [], NOW)
    assert a == new_plan("rules", [ME], [], NOW)
    assert a.plan_id != new_plan("rules", [("acme", "u2")], [], NOW).plan_id
    assert a.plan_id != new_plan("rules", [ME], [], NOW + 1).plan_id
    consolidate = PlannedOp(op=Operation.CONSOLIDATION, tenant="acme", user_id="u1", when=Now())
    assert a.plan_id != new_plan("rules", [ME], [consolidate], NOW).plan_id
    # A plan round-trips through JSON (the plans topic) and validates again.
    again = validate_plan(new_plan("rules", [ME], [consolidate], NOW).model_dump_json(), SCOPE, NOW)
    assert isinstance(again, Plan) and again.ops == (consolidate,)


def test_params_for_applies_the_args() -> None:
    base = LifecycleParams()
    top = PlannedOp(
        op=Operation.RESYNTHESIS, tenant="a", user_id="u", args={"narrative_top_k": 3.0}
    )
    assert params_for(top, base).narrative_top_k == 3
    assert isinstance(params_for(top, base).narrative_top_k, int)
    plain = PlannedOp(op=Operation.FORGETTING, tenant="a", user_id="u")
    assert params_for(plain, base) is base
