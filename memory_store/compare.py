"""Two memories of one user compared field by field: what a replay check reports.

The memory is meant to be a function of the user's ordered events, so two
stores built from the same stream (other batch sizes, a crash and restart)
must hold the same beliefs. Internal bookkeeping (the stream position a chunk
counted through, memory versions minted from the clock) is not compared; what
a ranker or an auditor reads is.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from memory_store.store import ALL_EVENTS, MemoryStore
from memory_store.tiers import ChangeRecord, PreferenceChunk, Profile, UserSnapshot

__all__ = ["StoreDiff", "UserDiff", "change_effects", "diff_snapshots", "diff_stores"]

_SLICE = 500
# A text embedded in another batch differs in the last float32 digits (padding changes the
# sums' order): embeddings are equal within this.
EMBEDDING_TOL = 1e-5


@dataclass(frozen=True, slots=True)
class UserDiff:
    """How one user's memory differs between two stores (empty lists: identical)."""

    tenant: str
    user_id: str
    chunks: list[str]
    profile: list[str]
    events: list[str]
    max_strength_diff: float

    @property
    def differs(self) -> bool:
        return bool(self.chunks or self.profile or self.events)


def _chunk_fields(c: PreferenceChunk) -> dict[str, object]:
    return {
        "polarity": c.polarity.value,
        "evidence_count": c.evidence_count,
        "evidence": c.evidence,
        "first_seen": c.first_seen,
        "last_seen": c.last_seen,
        "aliases": c.aliases,
        "version": c.version,
    }


def _chunk_diffs(
    a: dict[str, PreferenceChunk], b: dict[str, PreferenceChunk], tol: float
) -> tuple[list[str], float]:
    out: list[str] = []
    worst = 0.0
    for cid in sorted(a.keys() | b.keys()):
        ca, cb = a.get(cid), b.get(cid)
        if ca is None or cb is None:
            only = ca or cb
            assert only is not None
            side = "first" if ca is not None else "second"
            out.append(f"{only.facet}={only.key}: only in the {side} store")
            worst = max(worst, only.strength)
            continue
        gap = abs(ca.strength - cb.strength)
        worst = max(worst, gap)
        if gap > tol:
            out.append(f"{ca.facet}={ca.key}: strength {ca.strength:.6f} vs {cb.strength:.6f}")
        fa, fb = _chunk_fields(ca), _chunk_fields(cb)
        out += [f"{ca.facet}={ca.key}: {k} {fa[k]!r} vs {fb[k]!r}" for k in fa if fa[k] != fb[k]]
    return out, worst


def _profile_diffs(a: Profile | None, b: Profile | None, tol: float) -> list[str]:
    if a is None or b is None:
        return [] if a is b else [f"profile only in the {'first' if a else 'second'} store"]
    out = []
    if a.narrative != b.narrative:
        out.append(f"narrative {a.narrative[:60]!r} vs {b.narrative[:60]!r}")
    if [c for c, _ in a.sources] != [c for c, _ in b.sources]:
        out.append("built from other chunks")
    if a.built_at != b.built_at:
        out.append(f"built_at {a.built_at} vs {b.built_at}")
    gap = max((abs(x - y) for x, y in zip(a.embedding, b.embedding, strict=False)), default=0.0)
    if gap > max(tol, EMBEDDING_TOL):
        out.append("embedding differs")
    return out


def diff_snapshots(a: UserSnapshot, b: UserSnapshot, tol: float = 1e-9) -> UserDiff:
    """Every difference between two snapshots of the same user (strengths within ``tol``)."""
    if (a.tenant, a.user_id) != (b.tenant, b.user_id):
        raise ValueError("snapshots of two different users")
    chunks, worst = _chunk_diffs(a.chunk_index(), b.chunk_index(), tol)
    ids_a, ids_b = {e.event_id for e in a.events}, {e.event_id for e in b.events}
    events = [f"event {e} only in the first store" for e in sorted(ids_a - ids_b)]
    events += [f"event {e} only in the second store" for e in sorted(ids_b - ids_a)]
    profile = _profile_diffs(a.profile, b.profile, tol)
    return UserDiff(a.tenant, a.user_id, chunks, profile, events, worst)


def change_effects(changes: Iterable[ChangeRecord]) -> list[tuple[str, str, str]]:
    """(chunk id, operation, event id) for every event a change applied, sorted.

    Batching groups the same effects into other records; the effects are the same.
    """
    return sorted((c.chunk_id or "", c.op.value, e) for c in changes for e in c.event_ids)


@dataclass(frozen=True, slots=True)
class StoreDiff:
    """Two stores compared: how many users, which differ and how."""

    users: int
    differing: list[UserDiff]

    @property
    def chunks_differing(self) -> int:
        return sum(len({line.split(":")[0] for line in d.chunks}) for d in self.differing)

    @property
    def max_strength_diff(self) -> float:
        return max((d.max_strength_diff for d in self.differing), default=0.0)


def diff_stores(
    a: MemoryStore, b: MemoryStore, tenant: str | None = None, tol: float = 1e-9
) -> StoreDiff:
    """Every user of either store compared (all their events, chunks and profile)."""
    keys = sorted(set(a.list_users(tenant)) | set(b.list_users(tenant)))
    differing: list[UserDiff] = []
    for start in range(0, len(keys), _SLICE):
        part = keys[start : start + _SLICE]
        snaps_a, snaps_b = a.read_snapshots(part, ALL_EVENTS), b.read_snapshots(part, ALL_EVENTS)
        for key in part:
            diff = diff_snapshots(snaps_a[key], snaps_b[key], tol)
            if diff.differs:
                differing.append(diff)
    return StoreDiff(len(keys), differing)
