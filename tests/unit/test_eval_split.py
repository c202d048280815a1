"""The global time split: who is evaluated on what, and which items count as cold."""

from __future__ import annotations

from typing import Any

import pytest

from streams.eval.split import leave_last_out, make_split, time_split


def ev(n: int, user: str, item: str, value: float = 4.0) -> dict[str, Any]:
    return {"event_id": f"e{n}", "tenant": "t", "user_id": user, "item_id": item,
            "type": "rate", "value": value, "ts": 1000 + n}  # fmt: skip


def test_the_first_fraction_is_replayed_and_targets_are_next_unseen_items() -> None:
    rows = [
        ev(0, "a", "i1"), ev(1, "b", "i2"), ev(2, "a", "i3"), ev(3, "c", "i1"),
        ev(4, "b", "i4"), ev(5, "a", "i2"), ev(6, "d", "i1"), ev(7, "a", "i1"),
        # held out (the last 2 of 10 at 0.8):
        ev(8, "a", "i5"), ev(9, "b", "i2"),
    ]  # fmt: skip
    split = time_split(rows, 0.8)
    assert [r["event_id"] for r in split.train] == [f"e{n}" for n in range(8)]
    assert [r["event_id"] for r in split.test] == ["e8", "e9"]
    assert split.split_ts == 1007
    # b's only held-out item is one b rated in training: nothing to predict for b.
    assert list(split.targets) == ["a"]
    assert split.targets["a"]["item_id"] == "i5"
    assert split.history["a"] == ["i1", "i3", "i2"]  # oldest first, no repeats
    assert split.known_items == frozenset({"i1", "i2", "i3", "i4"})
    assert [(r["user_id"], r["item_id"]) for r in split.cold_targets] == [("a", "i5")]


def test_users_seen_only_after_the_cut_are_not_evaluated() -> None:
    rows = [ev(n, "a", f"i{n}") for n in range(9)] + [ev(9, "new", "i0")]
    split = time_split(rows, 0.9)
    assert split.targets == {}
    assert split.cold_targets == []


def test_cold_targets_are_every_unseen_item_not_just_the_first() -> None:
    rows = [ev(0, "a", "i0"), ev(1, "b", "i1"), ev(2, "a", "x"), ev(3, "a", "y"), ev(4, "b", "x")]
    split = time_split(rows, 0.4)
    assert {u: r["item_id"] for u, r in split.targets.items()} == {"a": "x", "b": "x"}
    assert [(r["user_id"], r["item_id"]) for r in split.cold_targets] == [
        ("a", "x"), ("a", "y"), ("b", "x"),
    ]  # fmt: skip


@pytest.mark.parametrize("fraction", [0.0, 1.0, -0.1, 1.5])
def test_a_fraction_outside_the_open_interval_is_refused(fraction: float) -> None:
    with pytest.raises(ValueError, match="train_fraction"):
        time_split([ev(0, "a", "i"), ev(1, "a", "j")], fraction)


def test_unsorted_or_too_short_input_is_refused() -> None:
    with pytest.raises(ValueError, match="sorted"):
        time_split([ev(1, "a", "i"), ev(0, "a", "j")], 0.5)
    with pytest.raises(ValueError, match="empty"):
        time_split([ev(0, "a", "i")], 0.5)


def test_leave_last_out_holds_out_each_users_last_interaction() -> None:
    rows = [
        ev(0, "a", "i1"), ev(1, "b", "i2"), ev(2, "a", "i3"), ev(3, "c", "i1"),
        ev(4, "b", "i4"), ev(5, "a", "i2"), ev(6, "b", "i9"), ev(7, "a", "i5"),
    ]  # fmt: skip
    split = leave_last_out(rows)
    assert split.method == "leave-last-out"
    # a's last is e7, b's e6; c has a single interaction: kept in training, not evaluated.
    assert [r["event_id"] for r in split.test] == ["e6", "e7"]
    assert [r["event_id"] for r in split.train] == ["e0", "e1", "e2", "e3", "e4", "e5"]
    assert list(split.targets) == ["a", "b"]
    assert (split.targets["a"]["item_id"], split.targets["b"]["item_id"]) == ("i5", "i9")
    assert split.history["a"] == ["i1", "i3", "i2"] and split.history["c"] == ["i1"]
    assert split.split_ts == 1005  # the newest replayed interaction
    assert split.train_fraction == pytest.approx(6 / 8)
    # i5 and i9 are mentioned by no training interaction: both cold.
    assert {r["item_id"] for r in split.cold_targets} == {"i5", "i9"}


def test_leave_last_out_evaluates_every_user_with_two_interactions() -> None:
    rows = [ev(n, f"u{n % 7}", f"i{n}") for n in range(70)]
    split = leave_last_out(rows)
    assert len(split.targets) == 7 and len(split.test) == 7
    for user, target in split.targets.items():
        # The target is the user's newest interaction; everything older is replayed.
        mine = [r for r in rows if r["user_id"] == user]
        assert target is mine[-1]
        assert split.history[user] == [r["item_id"] for r in mine[:-1]]


def test_leave_last_out_skips_a_last_interaction_with_a_seen_item() -> None:
    rows = [ev(0, "a", "i1"), ev(1, "a", "i2"), ev(2, "a", "i1"), ev(3, "b", "i3"),
            ev(4, "b", "i4")]  # fmt: skip
    split = leave_last_out(rows)
    assert [r["event_id"] for r in split.test] == ["e2", "e4"]  # held out either way
    assert list(split.targets) == ["b"]  # a's repeat is not a next-item target


def test_make_split_dispatches_and_refuses_unknown_methods() -> None:
    rows = [ev(n, "a" if n % 2 else "b", f"i{n}") for n in range(10)]
    assert make_split(rows, "time", 0.8).method == "time"
    assert len(make_split(rows, "time", 0.8).test) == 2
    assert make_split(rows, "leave-last-out").method == "leave-last-out"
    with pytest.raises(ValueError, match="unknown split"):
        make_split(rows, "random")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="sorted"):
        leave_last_out([ev(1, "a", "i1"), ev(0, "a", "i2")])
    with pytest.raises(ValueError, match="empty"):
        leave_last_out([ev(0, "a", "i1"), ev(1, "b", "i2")])  # nobody has two
