"""The retention check: who lost events after their target, and the metrics without them."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np

from memory_store.operations import LifecycleParams
from streams.eval.retention import (
    events_kept_at_target,
    forgotten_after_target,
    intact_users,
    retention_markdown,
    retention_section,
)
from streams.eval.scorer import MemoryVectors
from streams.eval.split import leave_last_out

DAY = 86_400.0


def ev(n: int, user: str, item: str, ts: float) -> dict[str, Any]:
    return {"event_id": f"e{n}", "tenant": "t", "user_id": user, "item_id": item,
            "type": "rate", "value": 4.0, "ts": ts}  # fmt: skip


def memory(events: int) -> MemoryVectors:
    return MemoryVectors.empty(4, tuple((f"i{k}", 1.0) for k in range(events)))


def test_kept_events_are_the_window_of_those_within_the_ttl_of_the_target() -> None:
    rows = [
        ev(0, "a", "i0", 0.0), ev(1, "a", "i1", 400 * DAY), ev(2, "a", "i2", 401 * DAY),
        ev(3, "b", "i0", 402 * DAY), ev(4, "b", "i1", 403 * DAY), ev(5, "b", "i2", 404 * DAY),
        ev(6, "b", "i3", 405 * DAY), ev(7, "a", "i3", 500 * DAY),
        ev(8, "c", "i0", 0.0), ev(9, "c", "i1", 100 * DAY), ev(10, "c", "i2", 700 * DAY),
    ]  # fmt: skip
    split = leave_last_out(sorted(rows, key=lambda r: r["ts"]))
    # a (target day 500): i0 (day 0) is outside 365 days of it, i1 and i2 inside;
    # b (day 405): i0, i1, i2; c (day 700): both its training events expired before it.
    ttl_only = LifecycleParams(event_ttl=365 * DAY, min_events_per_user=0)
    assert events_kept_at_target(split, ttl_only, 50) == {"a": 2, "b": 3, "c": 0}
    assert events_kept_at_target(split, ttl_only, 2) == {"a": 2, "b": 2, "c": 0}
    # Each user's newest event is kept whatever its age; so are all of them by default.
    newest = replace(ttl_only, min_events_per_user=1)
    assert events_kept_at_target(split, newest, 50) == {"a": 2, "b": 3, "c": 1}
    assert events_kept_at_target(split, LifecycleParams(), 50) == {"a": 3, "b": 3, "c": 2}


def test_a_memory_with_fewer_events_than_retention_keeps_was_forgotten_after_the_target() -> None:
    memories = {"a": memory(2), "b": memory(1), "c": memory(0)}
    assert forgotten_after_target(memories, {"a": 2, "b": 3, "c": 0}) == {"b"}


def test_every_variant_is_measured_on_the_users_no_tiered_variant_forgot() -> None:
    users = ["a", "b", "c", "d"]
    ranks = {
        "recent": ([0, 0, 20, None], [10, 10, 30, 10]),
        "tiered_rules": ([0, 50, 5, 1], [10, 60, 30, 10]),
    }
    check = intact_users({"tiered_rules": frozenset({"b"}), "tiered_fixed": frozenset({"d"})},
                         users, ranks)  # fmt: skip
    assert check.intact == {"a", "c"}
    assert check.metrics["recent"].users == 2
    assert check.metrics["recent"].hr_at_10 == 0.5  # a hit, c at rank 20 missed
    assert check.metrics["tiered_rules"].hr_at_10 == 1.0
    assert np.isclose(check.metrics["tiered_rules"].ndcg_at_10, (1.0 + 1 / np.log2(7)) / 2)
    section = retention_section(check, 50)
    assert section["forgotten_after_target"] == {"tiered_rules": 1, "tiered_fixed": 1}
    assert section["users_intact"] == 2
    text = "\n".join(retention_markdown(section))
    assert "| tiered_rules | 1.0000" in text and "On the 2 users" in text
    assert retention_markdown(None) == []
