"""Items that say nothing about taste get facets from a tagger (the LLM extractor's half).

Extraction reads preferences through item facets (genres, era). A catalogue
item with only a title and a description yields no genre, so events about it
teach nothing. A tagger, when configured (the planner's LLM), reads the text
once per item, when the item arrives, and the chosen genres are stored with
the item and marked with their source; the deterministic extractor then turns
events into chunks exactly as for any other item. Tagging at the catalogue
costs one model call per item instead of one per event.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from memory_store.events import Item
from memory_store.signals import item_facets

__all__ = ["ItemTagger", "TaggedItems", "needs_tags", "tag_items"]

ItemTagger = Callable[[Item], Sequence[str] | None]
"""Item -> genres for it, or None when it cannot say (budget spent, model failed)."""

SOURCE_ATTR = "genres_source"


def needs_tags(item: Item) -> bool:
    """True when the item gives extraction no genre to learn from."""
    return not any(facet == "genre" for facet, _, _ in item_facets(item))


@dataclass(frozen=True, slots=True)
class TaggedItems:
    """The items to store (tagged where the tagger answered) and what happened."""

    items: list[Item]
    outcomes: Counter[str] = field(default_factory=Counter)


def tag_items(items: Sequence[Item], tagger: ItemTagger | None, source: str) -> TaggedItems:
    """Genres for the items that lack them; every other item passes through untouched.

    Tagged items carry ``genres`` and ``genres_source`` (e.g. "llm:smollm2"), so a
    chunk built from them can be traced to the model, not to the catalogue.
    """
    if tagger is None:
        return TaggedItems(list(items))
    out: list[Item] = []
    outcomes: Counter[str] = Counter()
    for item in items:
        if not needs_tags(item):
            out.append(item)
            continue
        genres = [g.strip() for g in tagger(item) or () if g.strip()]
        if not genres:
            outcomes["untagged"] += 1
            out.append(item)
            continue
        outcomes["tagged"] += 1
        attributes = {**item.attributes, "genres": genres, SOURCE_ATTR: source}
        out.append(item.model_copy(update={"attributes": attributes}))
    return TaggedItems(out, outcomes)
