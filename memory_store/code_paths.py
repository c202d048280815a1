"""Code-path beliefs: preferences keyed by the item codebook's collaborative code paths.

Genres and eras say little about what a user watches next on MovieLens (content-only
NDCG@10 ~0.002); items that are chosen together say more. The item codebook (MFLI)
files every item under a code path of its collaborative facet (item2vec over
co-engagement), so a code prefix is a co-engagement cluster. An item carries its
prefix as a topic (facet ``code``, key ``collab/3/11``) beside its genres and era,
and every lifecycle operation acts on it as on any topic: a rating above or below
the user's norm likes or dislikes the cluster, a choice engages with it (facet
``engagement``, key ``code:collab/3/11``), beliefs decay and are forgotten, and
consolidation folds sibling clusters a user holds into their parent prefix
(``collab/3``), so a broad taste ends as one belief rather than many thin ones.

The readable topic names the cluster by its most typical titles ("titles like Alien,
Aliens"), so the change log and the profile stay readable.

Codes come from the writer (``CodedItem``): an item without codes (its tenant has no
codebook yet, or the item no collaborative vector) is evidence for its genres and era
only. A key survives a codebook refresh (fine-tuning moves at most ``max_churn`` of
the items); a new first fit names new clusters, and beliefs on the old ones fade.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Mapping, Sequence

from memory_store.engagement import ENGAGEMENT_FACET, engagement_key
from memory_store.events import Item
from memory_store.tiers import PreferenceChunk

__all__ = [
    "CODE_FACET",
    "NAMING_TITLES",
    "CodeTopics",
    "CodedItem",
    "CodedItems",
    "Topics",
    "code_key",
    "code_topic",
    "code_topics_of",
    "is_code_key",
    "parent_key",
    "parse_key",
    "path_of",
]

CODE_FACET = "code"
_SEPARATOR = "/"
NAMING_TITLES = 2  # titles that name a cluster
_MAX_TITLE = 40


# An item's code-path topics: (key, readable topic) pairs.
Topics = tuple[tuple[str, str], ...]


class CodedItem(Item):
    """A catalogue item with the code-path topics it is evidence for."""

    code_topics: Topics = ()


# (tenant, item ids) -> each coded item's topics: what the writer's codebook answers.
CodeTopics = Callable[[str, Collection[str]], Mapping[str, Topics]]


class CodedItems:
    """Items with their code topics, as ``CodedItem`` where they have any (fields taken as
    validated). The same object comes back while an item and its topics are unchanged:
    ``signals.cached_facets`` caches by object identity, and a fresh object per batch
    would re-read every coded item's facets and churn that cache."""

    def __init__(self, max_items: int = 200_000) -> None:
        self._made: dict[tuple[str, str], tuple[Item, CodedItem]] = {}
        self._max = max_items

    def __call__(self, items: Mapping[str, Item], topics: Mapping[str, Topics]) -> dict[str, Item]:
        out: dict[str, Item] = {}
        for item_id, item in items.items():
            found = topics.get(item_id)
            if not found:
                out[item_id] = item
                continue
            key = (item.tenant, item_id)
            hit = self._made.get(key)
            if hit is None or hit[0] is not item or hit[1].code_topics != found:
                if len(self._made) >= self._max:
                    self._made.clear()
                hit = self._made[key] = (
                    item,
                    CodedItem.model_construct(**dict(item), code_topics=found),
                )
            out[item_id] = hit[1]
        return out


def code_key(facet: str, path: Sequence[int]) -> str:
    """E.g. ``collab/3/11`` for facet ``collab`` and prefix (3, 11)."""
    if not path:
        raise ValueError("a code key needs at least one code")
    return _SEPARATOR.join([facet, *(str(int(c)) for c in path)])


def is_code_key(key: str) -> bool:
    parts = key.split(_SEPARATOR)
    return len(parts) >= 2 and all(p.isdigit() for p in parts[1:])


def parse_key(key: str) -> tuple[str, tuple[int, ...]] | None:
    """``collab/3/11`` -> ("collab", (3, 11)); None for a key that is not a code path."""
    if not is_code_key(key):
        return None
    facet, *codes = key.split(_SEPARATOR)
    return facet, tuple(int(c) for c in codes)


def parent_key(key: str) -> str | None:
    """The prefix one level up (``collab/3/11`` -> ``collab/3``); None at the top level."""
    if not is_code_key(key):
        return None
    parts = key.split(_SEPARATOR)
    return _SEPARATOR.join(parts[:-1]) if len(parts) > 2 else None


def code_topic(titles: Iterable[str]) -> str:
    """A cluster named by its typical titles: "titles like Alien (1979), Aliens (1986)"."""
    named = [" ".join(t.split())[:_MAX_TITLE] for t in titles if t.strip()][:NAMING_TITLES]
    return f"titles like {', '.join(named)}" if named else "a cluster of titles"


def code_topics_of(item: Item) -> Topics:
    """The code-path topics an item carries (none for a plain catalogue item)."""
    return item.code_topics if isinstance(item, CodedItem) else ()


_ENGAGED_CODE = engagement_key(CODE_FACET, "")  # "code:"


def path_of(chunk: PreferenceChunk) -> str | None:
    """The code key a chunk is about (satisfaction or engagement), or None."""
    if chunk.facet == CODE_FACET:
        return chunk.key
    if chunk.facet == ENGAGEMENT_FACET and chunk.key.startswith(_ENGAGED_CODE):
        return chunk.key[len(_ENGAGED_CODE) :]
    return None
