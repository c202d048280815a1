"""A sliding-window budget of LLM calls and tokens per minute.

A stream never waits for the planner: when the budget is spent the caller does
not queue, it lets the rules policy decide. So the budget only answers yes or
no, and a yes is spent at once (callers charge an upper bound of the tokens).
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable

__all__ = ["WINDOW_S", "Budget"]

WINDOW_S = 60.0


class Budget:
    """At most ``calls_per_min`` calls and ``tokens_per_min`` tokens in any 60 s window.

    A spend at time t counts against every window containing t, i.e. until
    ``t + 60`` (exclusive). Thread-safe; ``clock`` is monotonic seconds.
    """

    def __init__(
        self,
        calls_per_min: int,
        tokens_per_min: int,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if calls_per_min < 0 or tokens_per_min < 0:
            raise ValueError("budget limits must be >= 0")
        self.calls_per_min = calls_per_min
        self.tokens_per_min = tokens_per_min
        self._clock = clock
        self._spent: deque[tuple[float, int, int]] = deque()
        self._calls = 0
        self._tokens = 0
        self._lock = threading.Lock()
        self.refused = 0

    def _expire(self, now: float) -> None:
        while self._spent and self._spent[0][0] <= now - WINDOW_S:
            _, calls, tokens = self._spent.popleft()
            self._calls -= calls
            self._tokens -= tokens

    def try_spend(self, calls: int, tokens: int) -> bool:
        """Spend ``calls`` and ``tokens`` now if that keeps the last 60 s within the limits."""
        if calls < 0 or tokens < 0:
            raise ValueError("cannot spend a negative amount")
        with self._lock:
            now = self._clock()
            self._expire(now)
            fits = (
                self._calls + calls <= self.calls_per_min
                and self._tokens + tokens <= self.tokens_per_min
            )
            if not fits:
                self.refused += 1
                return False
            self._spent.append((now, calls, tokens))
            self._calls += calls
            self._tokens += tokens
            return True

    def remaining(self) -> tuple[int, int]:
        """Calls and tokens that could be spent right now."""
        with self._lock:
            self._expire(self._clock())
            return self.calls_per_min - self._calls, self.tokens_per_min - self._tokens
