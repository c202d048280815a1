"""Stored keys: a tenant and ids joined by one separator, unambiguous by construction.

Events, items, chunks, profiles, planner state and codebook rows are keyed by their
tenant and id joined with the unit separator. A join is ambiguous as soon as a part
may hold the separator: tenant ``acme\\x1fx`` with event ``y`` and tenant ``acme``
with event ``x\\x1fy`` would share one key, and the second write would be taken for a
duplicate of the first. So ids are refused at the edge if they hold a control
character (``ID_PATTERN``, in the event contract and the read API), and ``join_key``
refuses a part holding the separator, whoever calls it.
"""

from __future__ import annotations

__all__ = ["ID_PATTERN", "SEPARATOR", "join_key"]

SEPARATOR = "\x1f"
# A tenant, user, item or event id: no control characters (the separator is one of them).
ID_PATTERN = r"^[^\x00-\x1f\x7f]+$"


def join_key(*parts: str) -> str:
    """The stored key of ``parts``; ValueError if a part holds the separator."""
    for part in parts:
        if SEPARATOR in part:
            raise ValueError(f"an id may not hold the key separator \\x1f: {part[:64]!r}")
    return SEPARATOR.join(parts)
