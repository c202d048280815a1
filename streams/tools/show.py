"""Human-readable rendering of a user's memory for the terminal."""

from __future__ import annotations

from datetime import UTC, datetime

from rich.console import Console
from rich.table import Table

from memory_store.store import UserMemory

__all__ = ["print_memory"]


def _when(ts: float) -> str:
    return datetime.fromtimestamp(ts, tz=UTC).strftime("%Y-%m-%d %H:%M:%S")


def print_memory(console: Console, memory: UserMemory, chunks: int = 12) -> None:
    """The three tiers, strongest beliefs first, and the latest change-log rows."""
    console.print(
        f"[bold]{memory.tenant}/{memory.user_id}[/]: {memory.event_count} events, "
        f"{len(memory.chunks)} preference chunks"
    )
    if memory.profile is not None:
        p = memory.profile
        console.print(
            f"[bold]profile v{p.version}[/] (built {_when(p.built_at)} event time, "
            f"from {len(p.sources)} chunks): {p.narrative}"
        )
    beliefs = Table(title="preference memory (strongest first)")
    for column in ("facet", "belief", "strength", "evidence", "last evidence", "version"):
        beliefs.add_column(column)
    for c in memory.chunks[:chunks]:
        beliefs.add_row(
            c.facet, c.text, f"{c.strength:.3f}", str(c.evidence_count), _when(c.last_seen),
            str(c.version),
        )  # fmt: skip
    if memory.chunks:
        console.print(beliefs)
    if memory.recent_changes:
        changes = Table(title="change log (newest first)")
        for column in ("operation", "strength", "events", "detail"):
            changes.add_column(column)
        for row in memory.recent_changes:
            before, after = row["before_strength"], row["after_strength"]
            moved = "" if after is None else f"{'new' if before is None else f'{before:.3f}'}"
            moved += "" if after is None else f" → {after:.3f}"
            changes.add_row(row["op"], moved, str(len(row["event_ids"])), row["detail"][:90])
        console.print(changes)
    events = Table(title="event memory (newest first)")
    for column in ("time (UTC)", "type", "item", "value", "event id"):
        events.add_column(column)
    for row in memory.recent_events:
        value = "" if row["value"] is None else f"{row['value']:g}"
        events.add_row(_when(row["ts"]), row["type"], row["item_id"], value, row["event_id"])
    console.print(events)
