"""Merging beliefs: one chunk holding several chunks' evidence, shared by both kinds of
consolidation (near-duplicate topics, and sibling code paths into their parent)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from memory_store.operations.params import LifecycleParams
from memory_store.tiers import PreferenceChunk, bounded_evidence

__all__ = ["merge_chunks"]


def merge_chunks(
    survivor: PreferenceChunk, others: Sequence[PreferenceChunk], params: LifecycleParams
) -> PreferenceChunk:
    """The survivor holding all their evidence: strength 1 - prod(1 - s_i) at the latest time.

    Each strength is first decayed to the merged ``last_seen``, since a stored
    strength is the belief as of its own ``last_seen``.
    """
    group = [survivor, *others]
    last_seen = max(c.last_seen for c in group)
    keep = 1.0
    for c in group:
        keep *= 1.0 - params.decayed(c.strength, last_seen - c.last_seen)
    pairs = [p for c in group for p in zip(c.evidence, c.evidence_ts, strict=True)]
    ids, times = bounded_evidence(pairs)
    aliases = {a for c in group for a in (c.key, *c.aliases)} - {survivor.key}
    return replace(
        survivor,
        strength=min(1.0, max(0.0, 1.0 - keep)),
        evidence=ids,
        evidence_ts=times,
        through=max(c.through for c in group),
        evidence_count=sum(c.evidence_count for c in group),
        first_seen=min(c.first_seen for c in group),
        last_seen=last_seen,
        aliases=tuple(sorted(aliases)),
        version=survivor.version + 1,
    )
