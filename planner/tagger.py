"""The LLM extractor: the planner's model picks a genre for items that carry none.

The model never writes free text here: it continues "Genre: " with exactly one
name from the vocabulary (constrained choice, see ``planner/backend.py``), so
every answer is a valid facet. The vocabulary defaults to MovieLens's genres;
a tenant with another taxonomy configures its own. Calls are budgeted; past
the budget, or on any model failure, the item is stored untagged (counted).
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Sequence

from memory_store.events import Item
from planner.backend import Choice, ChoiceBackend
from planner.budget import Budget

__all__ = ["DEFAULT_GENRES", "LLMItemTagger", "prompt_for_item"]

log = logging.getLogger(__name__)

DEFAULT_GENRES = (
    "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime", "Documentary",
    "Drama", "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery", "Romance", "Sci-Fi",
    "Thriller", "War", "Western",
)  # fmt: skip

SYSTEM = "You label catalogue items for a recommender system with the one genre that fits best."
_MAX_TEXT = 400


def prompt_for_item(item: Item, vocabulary: Sequence[str]) -> str:
    """Title, a bounded description and the allowed genres."""
    lines = [f"Title: {item.title.strip()}"]
    if item.text:
        text = " ".join(item.text.split())
        lines.append(f"Description: {text[:_MAX_TEXT]}")
    lines.append(f"Genres: {', '.join(vocabulary)}")
    return "\n".join(lines)


class LLMItemTagger:
    """An ``ItemTagger`` (item -> genres) over a choice backend, within a budget."""

    def __init__(
        self,
        backend: ChoiceBackend,
        budget: Budget,
        vocabulary: Sequence[str] = DEFAULT_GENRES,
        timeout_s: float = 10.0,
    ) -> None:
        if not vocabulary:
            raise ValueError("the tagger needs a vocabulary of genres")
        self.backend = backend
        self.budget = budget
        self.choice = Choice(tuple(vocabulary))
        self.timeout_s = timeout_s
        self.outcomes: Counter[str] = Counter()
        self.tokens = 0

    @property
    def source(self) -> str:
        """What tagged items record as the origin of their genres."""
        return f"llm:{self.backend.model}"

    def __call__(self, item: Item) -> list[str] | None:
        user = prompt_for_item(item, self.choice.options)
        script = ("Genre: ", self.choice)
        if not self.budget.try_spend(1, self.backend.max_tokens(SYSTEM, user, script)):
            self.outcomes["budget"] += 1
            return None
        try:
            result = self.backend.choose(SYSTEM, user, script, self.timeout_s)
        except TimeoutError:
            self.outcomes["timeout"] += 1
            return None
        except Exception:
            log.exception("LLM tagging of item %s failed", item.item_id)
            self.outcomes["error"] += 1
            return None
        self.tokens += result.prompt_tokens + result.completion_tokens
        self.outcomes["llm"] += 1
        return [self.choice.options[result.picks[0]]]
