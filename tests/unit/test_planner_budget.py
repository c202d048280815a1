"""The sliding 60 s budget, on a fake clock."""

from __future__ import annotations

import threading

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from planner.budget import WINDOW_S, Budget


class FakeClock:
    def __init__(self) -> None:
        self.t = 1_000.0

    def __call__(self) -> float:
        return self.t


def test_calls_are_limited_per_window() -> None:
    clock = FakeClock()
    budget = Budget(calls_per_min=2, tokens_per_min=1_000, clock=clock)
    assert budget.try_spend(1, 10)
    clock.t += 30
    assert budget.try_spend(1, 10)
    assert not budget.try_spend(1, 10)
    assert budget.refused == 1
    clock.t += 29.9  # the first spend is 59.9 s old: still in the window
    assert not budget.try_spend(1, 10)
    clock.t += 0.1  # exactly 60 s: it left the window
    assert budget.try_spend(1, 10)
    assert budget.remaining() == (0, 980)


def test_tokens_are_limited_per_window() -> None:
    clock = FakeClock()
    budget = Budget(calls_per_min=100, tokens_per_min=500, clock=clock)
    assert budget.try_spend(1, 400)
    assert not budget.try_spend(1, 101)  # a refusal spends nothing ...
    assert budget.try_spend(1, 100)  # ... so what still fits is taken
    assert budget.remaining() == (98, 0)
    clock.t += WINDOW_S
    assert budget.remaining() == (100, 500)


def test_a_zero_budget_refuses_everything_but_nothing() -> None:
    budget = Budget(0, 0, clock=FakeClock())
    assert not budget.try_spend(1, 0)
    assert not budget.try_spend(0, 1)
    assert budget.try_spend(0, 0)


def test_bad_amounts() -> None:
    with pytest.raises(ValueError):
        Budget(-1, 10)
    with pytest.raises(ValueError):
        Budget(1, 10).try_spend(-1, 0)


def test_threads_never_overspend() -> None:
    budget = Budget(calls_per_min=50, tokens_per_min=10**9)
    granted: list[bool] = []

    def spend() -> None:
        granted.extend(budget.try_spend(1, 1) for _ in range(100))

    threads = [threading.Thread(target=spend) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(granted) == 50


@settings(max_examples=300, deadline=None)
@given(
    calls_limit=st.integers(0, 5),
    tokens_limit=st.integers(0, 300),
    steps=st.lists(
        st.tuples(
            st.floats(0, 40, allow_nan=False),  # seconds before the attempt
            st.integers(0, 3),  # calls
            st.integers(0, 120),  # tokens
        ),
        max_size=60,
    ),
)
def test_spent_never_exceeds_the_limits_in_any_window(
    calls_limit: int, tokens_limit: int, steps: list[tuple[float, int, int]]
) -> None:
    clock = FakeClock()
    budget = Budget(calls_limit, tokens_limit, clock=clock)
    accepted: list[tuple[float, int, int]] = []
    for dt, calls, tokens in steps:
        clock.t += dt
        if budget.try_spend(calls, tokens):
            accepted.append((clock.t, calls, tokens))
        else:
            # Refused only when it really would not fit in the last 60 s.
            recent = [(c, k) for t, c, k in accepted if t > clock.t - WINDOW_S]
            assert (
                sum(c for c, _ in recent) + calls > calls_limit
                or sum(k for _, k in recent) + tokens > tokens_limit
            )
    for start, _, _ in accepted:
        window = [(c, k) for t, c, k in accepted if start <= t < start + WINDOW_S]
        assert sum(c for c, _ in window) <= calls_limit
        assert sum(k for _, k in window) <= tokens_limit
