"""The plan schema and its validator: the only door a plan comes through.

Whatever wrote a plan (a rule, a small local model, a remote endpoint), it runs
only after ``validate_plan`` accepted it: one of the six operations, for a user
the caller owns, with arguments in range and a time that makes sense.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Collection, Sequence
from dataclasses import dataclass, replace
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from memory_store.operations import LifecycleParams
from memory_store.tiers import Operation

__all__ = [
    "ALLOWED_ARGS",
    "INT_ARGS",
    "MAX_AHEAD_S",
    "MAX_OPS",
    "AfterEvents",
    "At",
    "Now",
    "Plan",
    "PlanRejection",
    "PlannedOp",
    "RejectionKind",
    "When",
    "new_plan",
    "params_for",
    "validate_plan",
]

# The furthest ahead an operation may be scheduled, and the most operations in one plan.
MAX_AHEAD_S = 30 * 86_400.0
MAX_OPS = 24
MAX_AFTER_EVENTS = 10_000

# Per operation, the LifecycleParams it may override and their allowed closed ranges.
ALLOWED_ARGS: dict[Operation, dict[str, tuple[float, float]]] = {
    Operation.EXTRACTION: {"min_weight": (0.0, 1.0)},
    Operation.REINFORCEMENT: {"reinforcement_rate": (0.0, 1.0)},
    Operation.WEAKENING: {"weakening_rate": (0.0, 1.0), "flip_threshold": (0.0, 0.5)},
    Operation.CONSOLIDATION: {"similarity_threshold": (0.5, 1.0)},
    Operation.FORGETTING: {"forget_threshold": (0.0, 0.5)},
    Operation.RESYNTHESIS: {"narrative_top_k": (1.0, 32.0)},
}

# Arguments that must be whole numbers.
INT_ARGS = frozenset({"narrative_top_k"})

_Frozen = ConfigDict(extra="forbid", frozen=True)


class Now(BaseModel):
    model_config = _Frozen
    kind: Literal["now"] = "now"


class AfterEvents(BaseModel):
    """Run once the user has ``n`` more events than when the plan was made."""

    model_config = _Frozen
    kind: Literal["after_events"] = "after_events"
    n: int = Field(ge=1, le=MAX_AFTER_EVENTS, strict=True)


class At(BaseModel):
    """Run at event time ``ts``: not in the past, and at most ``MAX_AHEAD_S`` ahead."""

    model_config = _Frozen
    kind: Literal["at"] = "at"
    ts: float

    @field_validator("ts")
    @classmethod
    def _in_window(cls, ts: float, info: ValidationInfo) -> float:
        if not math.isfinite(ts):
            raise PydanticCustomError("bad_when", "time must be finite")
        now = (info.context or {}).get("now")
        if now is not None and not now <= ts <= now + MAX_AHEAD_S:
            raise PydanticCustomError("bad_when", "time in the past or more than 30 days ahead")
        return ts


When = Annotated[Now | AfterEvents | At, Field(discriminator="kind")]


class PlannedOp(BaseModel):
    """One operation for one user, when to run it, and why."""

    model_config = _Frozen
    op: Operation
    tenant: str = Field(min_length=1, max_length=256)
    user_id: str = Field(min_length=1, max_length=256)
    args: dict[str, Annotated[float, Field(strict=True)]] = Field(default_factory=dict)
    when: When = Field(default_factory=Now)
    reason: str = Field(default="", max_length=300)

    @model_validator(mode="after")
    def _checked(self, info: ValidationInfo) -> PlannedOp:
        allowed = ALLOWED_ARGS[self.op]
        for name, value in self.args.items():
            if name not in allowed:
                raise PydanticCustomError("bad_args", f"{self.op.value} takes no arg {name!r}")
            lo, hi = allowed[name]
            if not (math.isfinite(value) and lo <= value <= hi):
                raise PydanticCustomError("bad_args", f"{name}={value} outside [{lo}, {hi}]")
            if name in INT_ARGS and not value.is_integer():
                raise PydanticCustomError("bad_args", f"{name} must be a whole number")
        users = (info.context or {}).get("users")
        if users is not None and (self.tenant, self.user_id) not in users:
            raise PydanticCustomError("foreign_user", "user not in this plan's scope")
        return self


class Plan(BaseModel):
    """A policy's decision for ``users`` (one plan may cover several, or decide nothing).

    ``fallback`` says why the fallback policy stood in for the one asked, if it did.
    """

    model_config = _Frozen
    plan_id: str = Field(min_length=1, max_length=128)
    policy: str = Field(min_length=1, max_length=64)
    model: str | None = None
    users: tuple[tuple[str, str], ...] = Field(min_length=1)
    ops: tuple[PlannedOp, ...] = ()
    fallback: str | None = None

    @field_validator("users")
    @classmethod
    def _in_scope(
        cls, users: tuple[tuple[str, str], ...], info: ValidationInfo
    ) -> tuple[tuple[str, str], ...]:
        scope = (info.context or {}).get("users")
        if scope is not None and any(u not in scope for u in users):
            raise PydanticCustomError("foreign_user", "plan names a user outside its scope")
        return users

    @field_validator("ops", mode="before")
    @classmethod
    def _not_too_many(cls, ops: Any, info: ValidationInfo) -> Any:
        limit = (info.context or {}).get("max_ops", MAX_OPS)
        if isinstance(ops, list | tuple) and len(ops) > limit:
            raise PydanticCustomError("too_many_ops", f"{len(ops)} ops, at most {limit}")
        return ops

    @model_validator(mode="after")
    def _ops_for_its_users(self) -> Plan:
        if any((o.tenant, o.user_id) not in self.users for o in self.ops):
            raise PydanticCustomError(
                "foreign_user", "an operation for a user the plan does not name"
            )
        return self


def new_plan(
    policy: str,
    users: Sequence[tuple[str, str]],
    ops: Sequence[PlannedOp],
    now: float,
    model: str | None = None,
    fallback: str | None = None,
) -> Plan:
    """A plan whose id hashes its content and time, so a replayed decision keeps its id."""
    body = json.dumps(
        [policy, model, now, fallback, list(users), [o.model_dump(mode="json") for o in ops]],
        sort_keys=True,
        separators=(",", ":"),
    )
    digest = hashlib.sha1(body.encode(), usedforsecurity=False).hexdigest()[:24]
    return Plan(
        plan_id=digest,
        policy=policy,
        model=model,
        users=tuple(users),
        ops=tuple(ops),
        fallback=fallback,
    )


def params_for(op: PlannedOp, base: LifecycleParams) -> LifecycleParams:
    """The lifecycle parameters ``op`` runs with: ``base`` with the op's args applied."""
    if not op.args:
        return base
    changes = {k: int(v) if k in INT_ARGS else v for k, v in op.args.items()}
    return replace(base, **changes)  # type: ignore[arg-type]


class RejectionKind(StrEnum):
    MALFORMED = "malformed"
    SCHEMA = "schema"
    UNKNOWN_OP = "unknown_op"
    FOREIGN_USER = "foreign_user"
    BAD_ARGS = "bad_args"
    BAD_WHEN = "bad_when"
    TOO_MANY_OPS = "too_many_ops"


@dataclass(frozen=True, slots=True)
class PlanRejection:
    """Why a plan was refused; ``kind`` is what the metrics count."""

    kind: RejectionKind
    reason: str


def _kind(error: Any) -> RejectionKind:
    etype, loc = error["type"], tuple(error["loc"])
    if etype in {k.value for k in RejectionKind}:
        return RejectionKind(etype)
    if loc[-1:] == ("op",) and etype == "enum":
        return RejectionKind.UNKNOWN_OP
    if "args" in loc:
        return RejectionKind.BAD_ARGS
    if "when" in loc:
        return RejectionKind.BAD_WHEN
    return RejectionKind.SCHEMA


def validate_plan(
    raw: dict[str, Any] | str | bytes,
    users: Collection[tuple[str, str]],
    now: float,
    max_ops: int = MAX_OPS,
) -> Plan | PlanRejection:
    """``raw`` (JSON text or a decoded dict) as a Plan for ``users`` at ``now``, or why not."""
    if isinstance(raw, str | bytes):
        try:
            raw = json.loads(raw)
        except (ValueError, UnicodeDecodeError) as exc:
            return PlanRejection(RejectionKind.MALFORMED, f"not JSON: {exc}"[:200])
    if not isinstance(raw, dict):
        return PlanRejection(RejectionKind.MALFORMED, f"a plan is an object, not {type(raw)}")
    context = {"users": users, "now": now, "max_ops": max_ops}
    try:
        return Plan.model_validate(raw, context=context)
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        where = ".".join(str(p) for p in first["loc"])
        return PlanRejection(_kind(first), f"{where}: {first['msg']}"[:200])
