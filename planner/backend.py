"""The small interface an LLM backend offers the planner: pick options in a scripted answer.

A 135 M model writes fluent but unusable plans, so it never writes free JSON:
the answer is a fixed script of text with choice points, and at each point the
backend picks one of the listed options. Any backend that can score or restrict
its next tokens (transformers locally; vLLM's guided choice or logprobs over
HTTP) fits, and the result always maps onto the plan schema.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

__all__ = ["Choice", "ChoiceBackend", "ChoiceResult", "Script"]


@dataclass(frozen=True, slots=True)
class Choice:
    """A choice point: the backend continues the answer with exactly one of ``options``."""

    options: tuple[str, ...]

    def __post_init__(self) -> None:
        if not self.options or len(set(self.options)) != len(self.options):
            raise ValueError("a choice needs distinct options")


# The assistant's answer: literal text the backend must emit, and choice points.
Script = Sequence[str | Choice]


@dataclass(frozen=True, slots=True)
class ChoiceResult:
    """The picked option index per choice point, in script order, and what it cost."""

    picks: tuple[int, ...]
    prompt_tokens: int
    completion_tokens: int
    seconds: float


class ChoiceBackend(Protocol):
    """A model that follows a script; ``model`` names it in every plan it shapes."""

    @property
    def model(self) -> str: ...

    def max_tokens(self, system: str, user: str, script: Script) -> int:
        """An upper bound of the tokens ``choose`` will use: what the budget is charged."""
        ...

    def choose(
        self, system: str, user: str, script: Script, timeout_s: float | None = None
    ) -> ChoiceResult:
        """Pick an option at every choice point; raise TimeoutError past ``timeout_s``."""
        ...
