"""Engagement beliefs: what a user keeps choosing, kept apart from how they rate it.

A rating says two things: that the user chose the item (engagement) and how it
pleased them (satisfaction, read against their own scale, ``rating_norm``). The
genre and era beliefs carry satisfaction only, so a user who watches dramas all
the time and rates them at their average has no drama belief at all. Each topic
therefore also has an engagement chunk (facet ``engagement``, key
``genre:drama``), reinforced by every event that engages with an item of it.

Its strength grows with the count of such events as ``n / (n + PRIOR)`` (a
running rate of ``1 / (n + PRIOR)``), so it orders a user's topics by how often
they were chosen without saturating: 10 events give 0.5, 100 give 0.91, 300 give
0.97. Between events it decays on the user's own clock like every belief, so a
topic the user stopped choosing fades while they choose others.
"""

from __future__ import annotations

from memory_store.tiers import PreferenceChunk

__all__ = [
    "ENGAGEMENT_FACET",
    "PRIOR",
    "engaged_strength",
    "engagement_key",
    "engagement_text",
    "is_engagement",
]

ENGAGEMENT_FACET = "engagement"
# A topic counts as if chosen this many times less: the first choice gives 1 / (1 + PRIOR).
PRIOR = 10.0


def engagement_key(facet: str, key: str) -> str:
    """The engagement chunk's key for a satisfaction topic, e.g. ``genre:drama``."""
    return f"{facet}:{key}"


def engagement_text(key: str, topic: str) -> str:
    """E.g. "engages with Drama", "engages with 1990s titles"."""
    return f"engages with {topic}{' titles' if key.startswith('era:') else ''}"


def is_engagement(chunk: PreferenceChunk) -> bool:
    return chunk.facet == ENGAGEMENT_FACET


def engaged_strength(decayed: float, count: int) -> float:
    """The strength after the ``count``-th engaging event, from the strength decayed to it."""
    return decayed + (1.0 - decayed) / (count + PRIOR)
