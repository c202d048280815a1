"""Consolidation: near-duplicate beliefs ("Sci-Fi", "Science Fiction") become one, and
thin sibling code-path beliefs fold into their parent prefix (``code_siblings``).

Duplicates split evidence and crowd the profile. Merging keeps every piece of
evidence countable: counts add up, the strongest chunk survives (ties: the
smallest id, so the result is deterministic), and the merged keys become its
aliases so later evidence about them lands on the survivor.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from memory_store.operations.code_siblings import fold_siblings
from memory_store.operations.merging import merge_chunks
from memory_store.operations.params import LifecycleParams
from memory_store.tiers import ChangeRecord, Delta, Operation, PreferenceChunk, UserSnapshot

__all__ = ["consolidation", "cosine", "merge_chunks"]


def cosine(a: Sequence[float], b: Sequence[float]) -> float:
    """Cosine similarity; 0 for empty, zero or mismatched vectors (never merge on them)."""
    if len(a) != len(b) or not a:
        return 0.0
    na = math.sqrt(sum(x * x for x in a))
    nb = math.sqrt(sum(y * y for y in b))
    if na == 0.0 or nb == 0.0:
        return 0.0
    return sum(x * y for x, y in zip(a, b, strict=True)) / (na * nb)


def _similarities(chunks: Sequence[PreferenceChunk]) -> npt.NDArray[np.float64]:
    """All pairwise cosines at once (the per-pair loop was most of a maintenance pass)."""
    n = len(chunks)
    dims = {len(c.embedding) for c in chunks}
    if n == 0 or len(dims) != 1 or 0 in dims:
        pairs = [[cosine(a.embedding, b.embedding) for b in chunks] for a in chunks]
        return np.array(pairs, dtype=np.float64).reshape(n, n)
    matrix = np.array([c.embedding for c in chunks], dtype=np.float64)
    norms = np.linalg.norm(matrix, axis=1)
    safe = np.where(norms == 0.0, 1.0, norms)
    unit = matrix / safe[:, None]
    sims = unit @ unit.T
    sims[norms == 0.0, :] = 0.0
    sims[:, norms == 0.0] = 0.0
    return sims


def consolidation(
    snapshot: UserSnapshot, params: LifecycleParams, plan_id: str | None = None
) -> Delta:
    """Merge same-facet, same-polarity chunks whose embeddings are near-identical, then fold
    thin sibling code beliefs the first pass left alone into their parents.

    Greedy, in order of strength (then id): each unclaimed chunk absorbs every
    weaker unclaimed chunk within the similarity threshold of it.
    """
    ranked = sorted(snapshot.chunks, key=lambda c: (-c.strength, c.chunk_id))
    similar = _similarities(ranked) >= params.similarity_threshold
    claimed: set[str] = set()
    upserts: list[PreferenceChunk] = []
    deletes: list[str] = []
    changes: list[ChangeRecord] = []
    for i, lead in enumerate(ranked):
        if lead.chunk_id in claimed:
            continue
        twins = [
            c
            for j, c in enumerate(ranked[i + 1 :], start=i + 1)
            if c.chunk_id not in claimed
            and (c.facet, c.polarity) == (lead.facet, lead.polarity)
            and similar[i, j]
        ]
        if not twins:
            continue
        claimed.update(c.chunk_id for c in twins)
        merged = merge_chunks(lead, twins, params)
        upserts.append(merged)
        deletes.extend(c.chunk_id for c in twins)
        changes.append(_record(snapshot, lead, merged, None, plan_id, twins))
        changes.extend(_record(snapshot, c, None, lead.chunk_id, plan_id, ()) for c in twins)
    merged_ids = claimed | {c.chunk_id for c in upserts}
    folded = fold_siblings(snapshot, ranked, params, plan_id, merged_ids)
    return Delta(
        upserts=(*upserts, *folded.upserts),
        deletes=(*deletes, *folded.deletes),
        changes=(*changes, *folded.changes),
    )


def _record(
    snapshot: UserSnapshot,
    before: PreferenceChunk,
    after: PreferenceChunk | None,
    into: str | None,
    plan_id: str | None,
    absorbed: Sequence[PreferenceChunk],
) -> ChangeRecord:
    if after is not None:
        names = ", ".join(f"'{c.text}'" for c in absorbed)
        detail = f"'{before.text}' absorbed {names}; evidence_count {after.evidence_count}"
        event_ids = after.evidence
    else:
        detail = f"'{before.text}' merged into {into}"
        event_ids = before.evidence
    return snapshot.change(
        op=Operation.CONSOLIDATION,
        chunk_id=before.chunk_id,
        before_strength=before.strength,
        after_strength=None if after is None else after.strength,
        event_ids=event_ids,
        plan_id=plan_id,
        detail=detail,
    )
