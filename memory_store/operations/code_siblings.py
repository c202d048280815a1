"""Consolidation of code-path beliefs: thin sibling clusters fold into their parent prefix.

A user who rated a few titles in each of several neighbouring co-engagement clusters
(``collab/3/2``, ``collab/3/11``, ...) holds several weak beliefs that each say little;
their parent prefix (``collab/3``) is the broader taste they share. Siblings weaker
than ``code_merge_below`` (same facet and polarity) fold into the parent once at least
``code_merge_min`` of them are held, or once the parent belief exists: the parent keeps
all their evidence (``merge_chunks``), their keys become its aliases so later evidence
about them lands there, and strong specific beliefs stay as they are.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import replace

from memory_store.code_paths import CODE_FACET, parent_key, path_of
from memory_store.engagement import ENGAGEMENT_FACET, engagement_key, engagement_text
from memory_store.operations.merging import merge_chunks
from memory_store.operations.params import LifecycleParams
from memory_store.signals import statement
from memory_store.tiers import (
    ChangeRecord,
    Delta,
    Operation,
    Polarity,
    PreferenceChunk,
    UserSnapshot,
    chunk_id_for,
)

__all__ = ["fold_siblings"]


def _keyed(chunk: PreferenceChunk, path: str) -> str:
    return path if chunk.facet == CODE_FACET else engagement_key(CODE_FACET, path)


def _as_parent(lead: PreferenceChunk, parent: str) -> PreferenceChunk:
    """The strongest sibling re-keyed to the parent prefix (its own key kept as an alias)."""
    key = _keyed(lead, parent)
    topic = lead.topic if lead.topic.endswith(" and similar") else f"{lead.topic} and similar"
    text = (engagement_text(key, topic) if lead.facet == ENGAGEMENT_FACET
            else statement(lead.polarity, topic))  # fmt: skip
    return replace(
        lead,
        chunk_id=chunk_id_for(lead.tenant, lead.user_id, lead.facet, key),
        key=key,
        topic=topic,
        text=text,
        aliases=tuple(sorted({*lead.aliases, lead.key})),
    )


def fold_siblings(
    snapshot: UserSnapshot,
    chunks: Sequence[PreferenceChunk],
    params: LifecycleParams,
    plan_id: str | None,
    taken: Collection[str] = (),
) -> Delta:
    """Fold thin sibling code beliefs into their parent; ``taken`` chunk ids are left alone
    (the similarity pass already merged them), and so is a group whose parent is taken."""
    every = {(c.facet, c.key): c for c in chunks}
    by_key = {k: c for k, c in every.items() if c.chunk_id not in taken}
    groups: dict[tuple[str, Polarity, str], list[PreferenceChunk]] = {}
    for chunk in sorted(by_key.values(), key=lambda c: (-c.strength, c.chunk_id)):
        path = path_of(chunk)
        parent = None if path is None else parent_key(path)
        if parent is not None and chunk.strength < params.code_merge_below:
            groups.setdefault((chunk.facet, chunk.polarity, parent), []).append(chunk)
    upserts: list[PreferenceChunk] = []
    deletes: list[str] = []
    changes: list[ChangeRecord] = []
    for (facet, polarity, parent), siblings in sorted(groups.items(), key=lambda g: g[0]):
        held = every.get((facet, _keyed(siblings[0], parent)))
        if held is not None and (held.polarity != polarity or held.chunk_id in taken):
            continue  # the parent says the opposite (or was just merged): leave them be
        if held is None and len(siblings) < params.code_merge_min:
            continue
        survivor = held if held is not None else _as_parent(siblings[0], parent)
        others = siblings if held is not None else siblings[1:]
        merged = merge_chunks(survivor, others, params)
        upserts.append(merged)
        deletes.extend(c.chunk_id for c in siblings if c.chunk_id != merged.chunk_id)
        names = ", ".join(f"'{c.text}'" for c in siblings)
        changes.append(snapshot.change(
            op=Operation.CONSOLIDATION, chunk_id=merged.chunk_id,
            before_strength=None if held is None else held.strength,
            after_strength=merged.strength, event_ids=merged.evidence, plan_id=plan_id,
            detail=f"'{merged.text}' ({parent}) absorbed siblings {names}; "
                   f"evidence_count {merged.evidence_count}",
        ))  # fmt: skip
        changes.extend(
            snapshot.change(
                op=Operation.CONSOLIDATION, chunk_id=c.chunk_id, before_strength=c.strength,
                after_strength=None, event_ids=c.evidence, plan_id=plan_id,
                detail=f"'{c.text}' folded into its parent {merged.chunk_id}",
            )
            for c in siblings
        )  # fmt: skip
    return Delta(upserts=tuple(upserts), deletes=tuple(deletes), changes=tuple(changes))
