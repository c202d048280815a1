"""The policies behind one interface: summaries in, one plan per user out.

``fixed`` is today's worker (absorb every batch, maintain everyone touched on a
timer) and is the baseline MARS claims to beat; ``rules`` reads the same summary
as the LLM does and acts only where a fact calls for it, so it is also what
stands in whenever the LLM cannot.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from memory_store.tiers import Operation
from planner.plan import MAX_AHEAD_S, AfterEvents, At, Now, Plan, PlannedOp, When, new_plan
from planner.summary import UserSummary

__all__ = [
    "ABSORB_OPS",
    "MAINTAIN_OPS",
    "FixedIntervalPolicy",
    "Policy",
    "RulesConfig",
    "RulesPolicy",
    "planned",
]

# The ingest pass (run on new events) and the maintenance pass, in lifecycle order.
ABSORB_OPS = (Operation.EXTRACTION, Operation.REINFORCEMENT, Operation.WEAKENING)
MAINTAIN_OPS = (Operation.CONSOLIDATION, Operation.FORGETTING, Operation.RESYNTHESIS)


class Policy(Protocol):
    """Decides, for each summary, which operations to run and when: one plan per summary."""

    @property
    def name(self) -> str: ...

    def decide(self, summaries: Sequence[UserSummary]) -> list[Plan]: ...


def planned(s: UserSummary, op: Operation, when: When, reason: str) -> PlannedOp:
    return PlannedOp(op=op, tenant=s.tenant, user_id=s.user_id, when=when, reason=reason[:300])


@dataclass(frozen=True, slots=True)
class FixedIntervalPolicy:
    """The baseline: absorb new events at once, maintain every ``every_s`` seconds.

    Maintenance visits only users with events since it last ran for them
    (``only_touched``), and then runs all three maintenance ops. In the worker
    the planner's round is the interval (``every_s`` 0): every user touched since
    the last round is maintained, whatever the event time says.
    """

    every_s: float
    only_touched: bool = True

    @property
    def name(self) -> str:
        return "fixed"

    def decide(self, summaries: Sequence[UserSummary]) -> list[Plan]:
        return [new_plan(self.name, [s.key], self._ops(s), s.now) for s in summaries]

    def _ops(self, s: UserSummary) -> list[PlannedOp]:
        ops = [
            planned(s, op, Now(), f"{s.events_since[op]} new events: absorb every batch")
            for op in ABSORB_OPS
            if s.events_since[op] > 0
        ]
        why = (
            f"fixed interval of {self.every_s:g}s elapsed"
            if self.every_s > 0
            else "fixed pass: touched since the last pass"
        )
        for op in MAINTAIN_OPS:
            ago = s.seconds_since[op]
            due = ago is None or ago >= self.every_s
            if due and (s.events_since[op] > 0 or not self.only_touched):
                ops.append(planned(s, op, Now(), why))
        return ops


@dataclass(frozen=True, slots=True)
class RulesConfig:
    """Thresholds of the rules policy; defaults suit the default LifecycleParams."""

    # Forget after this much idleness even without weak beliefs (retention catches up).
    idle_forget_s: float = 30 * 86_400.0
    # Resynthesise at once when this fraction of the profile's sources changed ...
    drift_now: float = 0.25
    # ... and after this many more events when any smaller part changed.
    resynthesis_after_events: int = 20


@dataclass(frozen=True, slots=True)
class RulesPolicy:
    """A deterministic policy: each operation only when a fact in the summary calls for it."""

    config: RulesConfig = RulesConfig()

    @property
    def name(self) -> str:
        return "rules"

    def decide(self, summaries: Sequence[UserSummary]) -> list[Plan]:
        return [new_plan(self.name, [s.key], self.ops_for(s), s.now) for s in summaries]

    def ops_for(self, s: UserSummary) -> list[PlannedOp]:
        """The operations for one user, in lifecycle order."""
        ops = [
            planned(s, op, Now(), f"{s.events_since[op]} new events since it last ran")
            for op in ABSORB_OPS
            if s.events_since[op] > 0
        ]
        if s.near_duplicate_pairs > 0:
            ops.append(
                planned(
                    s,
                    Operation.CONSOLIDATION,
                    Now(),
                    f"{s.near_duplicate_pairs} near-duplicate belief pairs",
                )
            )
        forgetting = self._forgetting(s)
        if forgetting is not None:
            ops.append(forgetting)
        resynthesis = self._resynthesis(s)
        if resynthesis is not None:
            ops.append(resynthesis)
        return ops

    def _forgetting(self, s: UserSummary) -> PlannedOp | None:
        op = Operation.FORGETTING
        if s.forgettable_chunks > 0:
            return planned(s, op, Now(), f"{s.forgettable_chunks} beliefs decayed below threshold")
        if s.expired_events > 0 or s.event_count > s.event_cap:
            return planned(
                s, op, Now(), f"{s.expired_events} events outside retention (cap {s.event_cap})"
            )
        ago = s.seconds_since[op]
        idle = s.idle_s if s.idle_s is not None else 0.0
        long_idle = idle >= self.config.idle_forget_s
        if long_idle and s.chunk_count > 0 and (ago is None or ago >= self.config.idle_forget_s):
            return planned(s, op, Now(), f"user idle {idle / 86_400:.0f} days")
        at = s.next_forget_at
        if s.weak_chunks > 0 and at is not None and s.now <= at <= s.now + MAX_AHEAD_S:
            return planned(
                s,
                op,
                At(ts=at),
                f"{s.weak_chunks} weak beliefs; the weakest fades in {(at - s.now) / 86_400:.1f}d",
            )
        return None

    def _resynthesis(self, s: UserSummary) -> PlannedOp | None:
        op = Operation.RESYNTHESIS
        if s.chunk_count == 0:
            return None
        contested = f"; {s.contested_chunks} contested" if s.contested_chunks else ""
        if s.profile_age_s is None:
            return planned(s, op, Now(), f"no profile yet for {s.chunk_count} beliefs")
        if s.profile_drift >= self.config.drift_now:
            return planned(s, op, Now(), f"profile drift {s.profile_drift:.2f}{contested}")
        if s.profile_drift > 0.0:
            n = self.config.resynthesis_after_events
            return planned(
                s, op, AfterEvents(n=n), f"small profile drift {s.profile_drift:.2f}{contested}"
            )
        return None
