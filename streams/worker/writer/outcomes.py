"""What the writer process sends back to the worker: small frozen records, cheap to pickle.

Kept apart from the child (which holds the memory) and the client (which holds the
process pool) because both sides, and the planner loop, speak them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from planner.plan import Plan
from planner.state import Request
from streams.ingest.batch import DeadLetter
from streams.worker.writer.codebook import IndexOutcome

__all__ = ["BatchOutcome", "ItemsOutcome", "MaintainOutcome", "Notice", "RoundOutcome"]

Notice = tuple[str, str, int]
"""(tenant, user_id, version) of a memory change, as a plain tuple for the process hop."""


@dataclass(frozen=True, slots=True)
class MaintainOutcome:
    """One maintenance pass: users visited, users changed, and their change notices."""

    users: int
    changed_users: int
    pending_users: int
    seconds: float
    notices: list[Notice] = field(default_factory=list)
    # Profiles narrated in this pass by source: "llm", or why the template stood in.
    narratives: dict[str, int] = field(default_factory=dict)
    # Maintenance operations run, by name (see MaintainResult.ops).
    ops: dict[str, int] = field(default_factory=dict)
    # Event-time rounds: operations planned for a later event time, waiting in the writer.
    scheduled: int | None = None


@dataclass(frozen=True, slots=True)
class RoundOutcome:
    """An event-time planner round the writer ran: the plans, what ran, and its pass."""

    plans: list[Plan]
    ran: list[Request]
    maintained: MaintainOutcome
    idle: bool = False  # closed because its partition went quiet


@dataclass(frozen=True, slots=True)
class BatchOutcome:
    """What happened to one batch: small enough to send back between processes."""

    consumed: int
    valid: int
    inserted: int
    write_seconds: float
    dead: list[DeadLetter] = field(default_factory=list)
    positions: dict[int, int] = field(default_factory=dict)
    changed_users: int = 0
    notices: list[Notice] = field(default_factory=list)
    rounds: list[RoundOutcome] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class ItemsOutcome:
    """What happened to one batch of catalogue messages."""

    stored: int
    dead: list[DeadLetter] = field(default_factory=list)
    # Items without genres in this batch: "tagged" by the LLM extractor, or "untagged".
    tagging: dict[str, int] = field(default_factory=dict)
    codebook: IndexOutcome = field(default_factory=IndexOutcome)
    # Users whose fold waited for one of these items, folded on at once: their notices.
    notices: list[Notice] = field(default_factory=list)
