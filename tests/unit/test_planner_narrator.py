"""The LLM narrator: only grounded text stands; every failure falls back to the template."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from memory_store.operations import template_narrative
from memory_store.signals import statement
from memory_store.tiers import Polarity, PreferenceChunk, chunk_id_for
from planner.budget import Budget
from planner.narrator import LLMNarrator, grounded, prompt_for


def chunk(topic: str, strength: float, polarity: Polarity = Polarity.LIKE) -> PreferenceChunk:
    return PreferenceChunk(
        chunk_id=chunk_id_for("acme", "u1", "genre", topic.lower()),
        tenant="acme", user_id="u1", facet="genre", key=topic.lower(), topic=topic,
        text=statement(polarity, topic), embedding=(1.0,), polarity=polarity, strength=strength,
        evidence=("e1",), evidence_ts=(1.0,), evidence_count=1, first_seen=1.0, last_seen=1.0,
    )  # fmt: skip


CHUNKS = [chunk("Comedy", 0.9), chunk("Sci-Fi", 0.7), chunk("Horror", 0.5, Polarity.DISLIKE)]


class Scripted:
    """A text backend that answers from a list, or raises what it is given."""

    model = "scripted"

    def __init__(self, answers: Sequence[str | BaseException]) -> None:
        self.answers = list(answers)
        self.prompts: list[str] = []

    def generate(
        self, system: str, user: str, max_new_tokens: int, timeout_s: float | None = None
    ) -> tuple[str, int, int]:
        self.prompts.append(user)
        answer = self.answers.pop(0)
        if isinstance(answer, BaseException):
            raise answer
        return answer, 50, 12


@pytest.mark.parametrize(
    ("text", "ok"),
    [
        ("A comedy lover who also enjoys sci-fi.", True),
        ("Loves Sci-Fi and comedy; avoids horror!", True),
        ("A comedy lover.", False),  # only one of the three strongest topics
        ("A comedy lover who also enjoys sci-fi and", False),  # cut off
        ("", False),
        ("Comedy and sci-fi fan. " * 30, False),  # too long, and looping
        ("Likes comedy and sci-fi and comedy and sci-fi and comedy.", False),  # loops
        ("A comedy lover.\n\nAlso sci-fi.", False),
    ],
)
def test_grounded_accepts_only_short_complete_faithful_text(text: str, ok: bool) -> None:
    assert grounded(text, CHUNKS) is ok


def test_the_prompt_lists_every_belief_with_its_polarity_and_level() -> None:
    prompt = prompt_for(CHUNKS)
    assert "likes Comedy (genre, strong)" in prompt
    assert "dislikes Horror (genre, moderate)" in prompt


def test_each_failure_falls_back_to_the_template_and_is_counted() -> None:
    backend = Scripted(
        ["A comedy lover who also enjoys sci-fi.", "Something else entirely.",
         TimeoutError(), RuntimeError("boom")]
    )  # fmt: skip
    narrate = LLMNarrator(backend, Budget(calls_per_min=4, tokens_per_min=10**6))
    template = template_narrative(CHUNKS)
    results = [narrate(CHUNKS) for _ in range(5)]
    assert results == ["A comedy lover who also enjoys sci-fi."] + [template] * 4
    assert narrate.outcomes == {"llm": 1, "ungrounded": 1, "timeout": 1, "error": 1, "budget": 1}
    assert len(backend.prompts) == 4  # the fifth was never sent: the budget was spent
    assert narrate.tokens == 2 * 62
    assert narrate([]) == template_narrative([])
