"""Human-readable rendering of a user's memory for the terminal."""

from __future__ import annotations

from datetime import UTC, datetime

from rich.console import Console
from rich.table import Table

from memory_store.store import UserMemory

__all__ = ["print_memory"]


def print_memory(console: Console, memory: UserMemory) -> None:
    """A header line and the user's most recent events as a table."""
    console.print(
        f"[bold]{memory.tenant}/{memory.user_id}[/]: {memory.event_count} events in event memory"
    )
    table = Table(title="recent events", show_lines=False)
    for column in ("time (UTC)", "type", "item", "value", "event id"):
        table.add_column(column)
    for row in memory.recent_events:
        when = datetime.fromtimestamp(row["ts"], tz=UTC).strftime("%Y-%m-%d %H:%M:%S")
        value = "" if row["value"] is None else f"{row['value']:g}"
        table.add_row(when, row["type"], row["item_id"], value, row["event_id"])
    console.print(table)
