"""The LLM extractor's two halves: which items get tagged, and the budgeted LLM tagger."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from memory_store.events import Item
from memory_store.item_tagging import needs_tags, tag_items
from memory_store.signals import item_facets
from planner.backend import Choice, ChoiceResult, Script
from planner.budget import Budget
from planner.tagger import DEFAULT_GENRES, LLMItemTagger, prompt_for_item


def make(item_id: str, **attributes: object) -> Item:
    return Item(tenant="acme", item_id=item_id, title=f"Film {item_id}", text="A heist in Lyon.",
                attributes=dict(attributes), ts=1.0)  # fmt: skip


class Picker:
    """A choice backend that always picks option ``index``, or fails with ``fail``."""

    def __init__(self, index: int = 0, fail: Exception | None = None) -> None:
        self.index = index
        self.fail = fail
        self.prompts: list[str] = []

    @property
    def model(self) -> str:
        return "picker-1"

    def max_tokens(self, system: str, user: str, script: Script) -> int:
        return 40

    def choose(
        self, system: str, user: str, script: Script, timeout_s: float | None = None
    ) -> ChoiceResult:
        self.prompts.append(user)
        if self.fail is not None:
            raise self.fail
        assert next(p for p in script if isinstance(p, Choice)).options == DEFAULT_GENRES
        return ChoiceResult((self.index,), 30, 2, 0.01)


def test_only_items_without_a_genre_need_tags() -> None:
    assert needs_tags(make("a"))
    assert needs_tags(make("b", year=1995, genres=["unknown"]))
    assert not needs_tags(make("c", genres="Comedy|Drama"))


def test_tagged_items_carry_genres_and_their_source_and_the_rest_pass_through() -> None:
    plain, known = make("a", year=1995), make("b", genres=["Drama"])
    asked: list[str] = []

    def tagger(item: Item) -> Sequence[str] | None:
        asked.append(item.item_id)
        return [" Crime "]

    out = tag_items([plain, known], tagger, "llm:test")
    assert asked == ["a"] and out.outcomes == {"tagged": 1}
    assert out.items[1] is known
    tagged = out.items[0]
    assert tagged.attributes == {"year": 1995, "genres": ["Crime"], "genres_source": "llm:test"}
    assert ("genre", "crime", "Crime") in item_facets(tagged)


def test_an_unanswered_item_is_stored_untagged_and_counted() -> None:
    plain = make("a")
    out = tag_items([plain], lambda _: None, "llm:test")
    assert out.items == [plain] and out.outcomes == {"untagged": 1}
    assert tag_items([plain], None, "x").items == [plain]


def test_the_llm_tagger_picks_from_the_vocabulary_and_records_its_model() -> None:
    backend = Picker(index=DEFAULT_GENRES.index("Crime"))
    tagger = LLMItemTagger(backend, Budget(10, 1_000))
    assert tagger(make("a")) == ["Crime"]
    assert tagger.source == "llm:picker-1" and tagger.outcomes == {"llm": 1}
    assert tagger.tokens == 32
    assert "Title: Film a" in backend.prompts[0] and "A heist in Lyon." in backend.prompts[0]


def test_a_spent_budget_or_a_failing_model_leaves_items_untagged() -> None:
    tagger = LLMItemTagger(Picker(), Budget(1, 1_000))
    assert tagger(make("a")) == ["Action"]
    assert tagger(make("b")) is None
    assert tagger.outcomes == {"llm": 1, "budget": 1}
    failing = LLMItemTagger(Picker(fail=RuntimeError("down")), Budget(10, 1_000))
    slow = LLMItemTagger(Picker(fail=TimeoutError()), Budget(10, 1_000))
    assert failing(make("a")) is None and slow(make("a")) is None
    assert failing.outcomes == {"error": 1} and slow.outcomes == {"timeout": 1}


def test_the_prompt_is_bounded_and_a_vocabulary_is_required() -> None:
    long = Item(tenant="t", item_id="x", title="T", text="word " * 1_000, ts=1.0)
    assert len(prompt_for_item(long, ["A", "B"])) < 500
    with pytest.raises(ValueError):
        LLMItemTagger(Picker(), Budget(1, 1), vocabulary=())
