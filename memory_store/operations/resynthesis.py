"""Resynthesis: the profile narrative is rebuilt from the strongest current beliefs.

The profile is what a recommender (or an LLM prompt) reads first, so it is
derived, never edited: it names the chunk versions it came from, and a
template writes it unless a ``narrate`` callable (an LLM later) is given.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from memory_store.code_paths import CODE_FACET
from memory_store.engagement import is_engagement
from memory_store.operations.extraction import Embedder, embed_all
from memory_store.operations.forgetting import decay_time, effective_strength
from memory_store.operations.params import LifecycleParams
from memory_store.rating_norm import is_norm
from memory_store.tiers import (
    Delta,
    Operation,
    Polarity,
    PreferenceChunk,
    Profile,
    UserSnapshot,
)

__all__ = ["NEUTRAL_NARRATIVE", "Narrator", "resynthesis", "template_narrative", "top_chunks"]

Narrator = Callable[[Sequence[PreferenceChunk]], str]

NEUTRAL_NARRATIVE = "No stable preferences are known yet."


def top_chunks(
    snapshot: UserSnapshot, now: float, params: LifecycleParams
) -> list[PreferenceChunk]:
    """The ``narrative_top_k`` beliefs by strength decayed to ``now`` (ties: chunk id), at
    most half of them engagement, so what the user chooses never crowds out how they like
    it; the rating norm is not a taste and stays out of the narrative."""
    clock = decay_time(snapshot, now, params)
    ranked = sorted(
        (c for c in snapshot.chunks if not is_norm(c)),
        key=lambda c: (-effective_strength(c, clock, params), c.chunk_id),
    )
    room = params.narrative_top_k // 2
    chosen: list[PreferenceChunk] = []
    for chunk in ranked:
        if len(chosen) == params.narrative_top_k:
            break
        if is_engagement(chunk):
            if room == 0:
                continue
            room -= 1
        chosen.append(chunk)
    return chosen


def _join(words: Sequence[str]) -> str:
    if len(words) <= 1:
        return "".join(words)
    return f"{', '.join(words[:-1])} and {words[-1]}"


def _by_facet(chunks: Sequence[PreferenceChunk]) -> dict[str, list[str]]:
    groups: dict[str, list[str]] = {}
    for c in chunks:
        groups.setdefault(c.facet, []).append(c.topic)
    return groups


def template_narrative(chunks: Sequence[PreferenceChunk]) -> str:
    """E.g. "Mostly chooses Drama and 1990s titles. Enjoys Comedy, especially 1980s titles.
    Tends to dislike Horror."

    Chunks are taken in the given (strength) order, grouped by polarity and facet.
    """
    if not chunks:
        return NEUTRAL_NARRATIVE
    sentences: list[str] = []
    chosen = [f"{c.topic} titles" if c.key.startswith("era:") else c.topic
              for c in chunks if is_engagement(c)]  # fmt: skip
    if chosen:
        sentences.append(f"Mostly chooses {_join(chosen)}.")
    likes = _by_facet([c for c in chunks if c.polarity is Polarity.LIKE and not is_engagement(c)])
    if likes:
        genres, eras = likes.pop("genre", []), likes.pop("era", [])
        parts = [f"Enjoys {_join(genres)}" if genres else ""]
        if eras:
            era_text = f"{_join(eras)} titles"
            parts.append(f"especially {era_text}" if genres else f"Enjoys {era_text}")
        clusters = likes.pop(CODE_FACET, [])  # "titles like ...": named already
        parts += [f"likes {_join(clusters)}" if clusters else ""]
        parts += [f"likes {facet} {_join(topics)}" for facet, topics in likes.items()]
        text = ", ".join(p for p in parts if p)
        sentences.append(text[0].upper() + text[1:] + ".")
    dislikes = _by_facet([c for c in chunks if c.polarity is Polarity.DISLIKE])
    if dislikes:
        topics = [
            f"{_join(t)} titles" if facet == "era" else _join(t) for facet, t in dislikes.items()
        ]
        sentences.append(f"Tends to dislike {_join(topics)}.")
    return " ".join(sentences)


def resynthesis(
    snapshot: UserSnapshot,
    now: float,
    params: LifecycleParams,
    embed: Embedder,
    narrate: Narrator | None = None,
    plan_id: str | None = None,
) -> Delta:
    """A new profile version from the top-k chunks (a neutral one when there are none)."""
    chunks = top_chunks(snapshot, now, params)
    narrative = narrate(chunks) if chunks and narrate is not None else template_narrative(chunks)
    (embedding,) = embed_all(embed, [narrative])
    old = snapshot.profile
    profile = Profile(
        tenant=snapshot.tenant,
        user_id=snapshot.user_id,
        narrative=narrative,
        embedding=embedding,
        version=1 if old is None else old.version + 1,
        sources=tuple((c.chunk_id, c.version) for c in chunks),
        built_at=now,
    )
    evidence = dict.fromkeys(e for c in chunks for e in c.evidence)
    record = snapshot.change(
        op=Operation.RESYNTHESIS,
        chunk_id=None,
        before_strength=None,
        after_strength=None,
        event_ids=tuple(evidence),
        plan_id=plan_id,
        detail=f"profile v{profile.version} from {len(chunks)} chunk(s): {narrative[:120]}",
    )
    return Delta(profile=profile, changes=(record,))
