"""How an interaction reads as evidence about a user's preferences.

Kept apart from the operations so the interpretation of signals (how much a
skip says, which item attributes are preference facets) can be tuned and
tested on its own; every operation sees evidence only through here.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from memory_store.code_paths import CODE_FACET, code_topics_of
from memory_store.engagement import ENGAGEMENT_FACET, engagement_key
from memory_store.events import EventType, Interaction, Item
from memory_store.rating_norm import Rated, RatingNorm
from memory_store.tiers import Polarity, UserSnapshot

__all__ = [
    "Evidence",
    "FacetEvidence",
    "cached_facets",
    "engages",
    "evidence_until_hold",
    "evidence_weight",
    "facet_evidence",
    "item_facets",
    "statement",
    "stream_evidence",
]

# Fixed weights for implicit and explicit signals; a rating is read from its value.
_TYPE_WEIGHT: dict[EventType, float] = {
    EventType.LIKE: 1.0,
    EventType.PURCHASE: 0.9,
    EventType.COMPLETE: 0.8,
    EventType.SHARE: 0.6,
    EventType.ADD_TO_CART: 0.5,
    EventType.PLAY: 0.3,
    EventType.CLICK: 0.2,
    EventType.VIEW: 0.1,
    EventType.SKIP: -0.4,
    EventType.DISLIKE: -1.0,
}

# Attribute names read as the "genre" facet, and values that say nothing.
_GENRE_ATTRS = ("genres", "genre")
_YEAR_ATTRS = ("year", "release_year")
_EMPTY = {"", "unknown", "(no genres listed)", "n/a", "na", "none", "null", "other"}
_MAX_KEY = 64
NEW_USER = RatingNorm()


def evidence_weight(event: Interaction, norm: RatingNorm = NEW_USER) -> float:
    """Signed strength of one interaction as evidence, in [-1, 1].

    A rating is read against the user's ``norm`` (their own mean, shrunk to 3 on a
    1-5 scale): (value - baseline) / 2, clamped. For a new user that is 5 -> 1,
    4 -> 0.5, 3 -> 0 (no evidence), 2 -> -0.5, 1 -> -1.
    """
    if event.type is EventType.RATE:
        if event.value is None:
            return 0.0
        return norm.weight(event.value)
    return _TYPE_WEIGHT.get(event.type, 0.0)


def engages(event: Interaction) -> bool:
    """Whether the event shows the user chose the item (a rating, a view, a like, a
    purchase...), whatever they made of it; a skip or a dislike does not."""
    return event.type is EventType.RATE or _TYPE_WEIGHT.get(event.type, 0.0) > 0.0


def _genre_values(raw: Any) -> list[str]:
    if isinstance(raw, str):
        return re.split(r"[|,;]", raw)
    if isinstance(raw, list | tuple):
        return [v for v in raw if isinstance(v, str)]
    return []


def _decade(raw: Any) -> int | None:
    if isinstance(raw, bool):
        return None
    if isinstance(raw, str):
        try:
            raw = float(raw.strip())
        except ValueError:
            return None
    if isinstance(raw, int | float) and math.isfinite(raw) and 1800 <= raw < 2200:
        return int(raw) // 10 * 10
    return None


# item_facets per item object: the same catalogue objects recur in every batch, and each
# event is read by three operations. The item is kept in the entry so its id stays valid.
_FACETS: dict[int, tuple[Item, list[tuple[str, str, str]]]] = {}
_FACETS_MAX = 200_000


def cached_facets(item: Item) -> list[tuple[str, str, str]]:
    hit = _FACETS.get(id(item))
    if hit is not None and hit[0] is item:
        return hit[1]
    if len(_FACETS) >= _FACETS_MAX:
        _FACETS.clear()
    facets = item_facets(item)
    _FACETS[id(item)] = (item, facets)
    return facets


def item_facets(item: Item) -> list[tuple[str, str, str]]:
    """(facet, normalised key, readable fragment) triples an item is evidence for.

    Genres become ("genre", "comedy", "Comedy"), a year becomes ("era", "1990s",
    "1990s"), a code path the writer attached becomes ("code", "collab/3/11", "titles
    like ..."); missing, odd or uninformative attributes yield nothing.
    """
    attrs = item.attributes
    out: list[tuple[str, str, str]] = []
    seen: set[tuple[str, str]] = set()
    for name in _GENRE_ATTRS:
        for value in _genre_values(attrs.get(name)):
            fragment = " ".join(value.split())[:_MAX_KEY]
            key = fragment.lower()
            if key in _EMPTY or ("genre", key) in seen:
                continue
            seen.add(("genre", key))
            out.append(("genre", key, fragment))
    for name in _YEAR_ATTRS:
        decade = _decade(attrs.get(name))
        if decade is not None and ("era", f"{decade}s") not in seen:
            seen.add(("era", f"{decade}s"))
            out.append(("era", f"{decade}s", f"{decade}s"))
            break
    out.extend((CODE_FACET, key, topic) for key, topic in code_topics_of(item))
    return out


def statement(polarity: Polarity, topic: str) -> str:
    """The short human-readable text of a chunk, e.g. "likes Comedy"."""
    return f"{'likes' if polarity is Polarity.LIKE else 'dislikes'} {topic}"


@dataclass(frozen=True, slots=True)
class FacetEvidence:
    """One event read as evidence about one facet value, at its position in the user's stream."""

    event_id: str
    ts: float
    weight: float
    facet: str
    key: str
    topic: str
    position: int = 0

    @property
    def polarity(self) -> Polarity:
        return Polarity.LIKE if self.weight > 0 else Polarity.DISLIKE


def facet_evidence(
    tenant: str,
    user_id: str,
    events: Iterable[Interaction],
    items: Mapping[str, Item],
    min_weight: float,
    positions: Sequence[int] | None = None,
    norm: RatingNorm = NEW_USER,
) -> list[FacetEvidence]:
    """This user's non-neutral evidence in stream order (the order given, or ``positions``).

    ``positions`` are the events' places in the user's stream (Kafka offsets);
    without them the events are numbered 0, 1, ... in the order given. Events of
    other users and items of other tenants are skipped, so an operation given a
    mixed batch can only ever learn about its own user.
    """
    return evidence_until_hold(
        tenant, user_id, events, items, min_weight, positions, False, norm
    ).steps


@dataclass(frozen=True, slots=True)
class Evidence:
    """A fold's evidence up to its hold, where it held, and the ratings that joined the norm."""

    steps: list[FacetEvidence]
    held_at: int | None
    rated: list[Rated]


def evidence_until_hold(
    tenant: str,
    user_id: str,
    events: Iterable[Interaction],
    items: Mapping[str, Item],
    min_weight: float,
    positions: Sequence[int] | None = None,
    hold: bool = True,
    norm: RatingNorm = NEW_USER,
) -> Evidence:
    """``facet_evidence`` up to the first event that teaches something (weighty, or engaging)
    whose item is unknown, and its position.

    Each event is evidence about each of its item's topics: satisfaction (its weight, when
    at least ``min_weight``) and engagement (weight 1, facet ``engagement``, when it
    ``engages``).

    With ``hold`` False such events are skipped instead (and the position is None).
    Each rating is weighed against ``norm`` as it stood before it, then joins it.
    Events at or before the norm's ``through`` were folded already and are skipped.
    """
    out: list[FacetEvidence] = []
    rated: list[Rated] = []
    seen: set[str] = set()
    evs = list(events)
    places = range(len(evs)) if positions is None else positions
    if len(places) != len(evs):
        raise ValueError(f"{len(places)} positions for {len(evs)} events")
    for ev, position in sorted(zip(evs, places, strict=True), key=lambda p: p[1]):
        if (ev.tenant, ev.user_id) != (tenant, user_id) or ev.event_id in seen:
            continue
        seen.add(ev.event_id)
        if norm.counted(position):
            continue  # folded already (the norm moves with the fold), and its weight then
            # was against a norm that had not yet counted it: a replay must not re-weigh it
        weight = evidence_weight(ev, norm)
        weighty, engaged = abs(weight) >= min_weight, engages(ev)
        item = items.get(ev.item_id) if weighty or engaged else None
        if (weighty or engaged) and (item is None or item.tenant != tenant):
            if hold:
                return Evidence(out, position, rated)
            item = None
        if ev.type is EventType.RATE and ev.value is not None:
            norm = norm.add(ev.value, position)
            rated.append(Rated(norm, ev.event_id, ev.ts))
        if item is None:
            continue
        for facet, key, topic in cached_facets(item):
            if weighty:
                out.append(FacetEvidence(ev.event_id, ev.ts, weight, facet, key, topic, position))
            if engaged:
                out.append(FacetEvidence(ev.event_id, ev.ts, 1.0, ENGAGEMENT_FACET,
                                         engagement_key(facet, key), topic, position))  # fmt: skip
    return Evidence(out, None, rated)


def stream_evidence(
    snapshot: UserSnapshot,
    events: Iterable[Interaction],
    items: Mapping[str, Item],
    min_weight: float,
    positions: Sequence[int] | None = None,
) -> list[FacetEvidence]:
    """``facet_evidence`` of the snapshot's user (without positions: 0, 1, ... as given),
    ratings read against the user's stored norm."""
    return facet_evidence(snapshot.tenant, snapshot.user_id, events, items, min_weight,
                          positions, RatingNorm.of(snapshot))  # fmt: skip
