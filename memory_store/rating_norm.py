"""A user's own rating scale, so a rating reads as evidence relative to the user.

A harsh rater's three stars are praise and a generous rater's three stars are a
complaint. Reading every rating against the scale's centre made a user who gives
one star to most of what they watch "dislike" every genre they keep choosing, all
at full strength. The norm is the user's mean rating so far, shrunk towards the
centre while they have rated little; each rating is weighed against the norm as it
stood before it, and then joins it.

The norm is kept as one chunk of the preference tier (facet ``rating_norm``), so it
is stored, versioned, read as of a time and replayed exactly like every belief: its
``through`` says which ratings it has counted, so a redelivered rating never counts
twice. It is a fact about the user rather than a taste, so it does not decay, is
never forgotten and stays out of the narrative and the planner's counts.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from memory_store.tiers import NO_POSITION, Polarity, PreferenceChunk, UserSnapshot, chunk_id_for

__all__ = [
    "NORM_FACET",
    "NORM_KEY",
    "NORM_TOPIC",
    "Rated",
    "RatingNorm",
    "is_norm",
    "norm_after",
    "norm_chunk",
]

NORM_FACET = "rating_norm"
NORM_KEY = "mean"
NORM_TOPIC = "ratings"
# The scale ratings are read on (MovieLens, most stores): 1 to 5, centred on 3.
SCALE_LOW, SCALE_HIGH, CENTRE = 1.0, 5.0, 3.0
# A new user counts as having given this many ratings at the centre.
PRIOR_RATINGS = 5.0


def is_norm(chunk: PreferenceChunk) -> bool:
    """True for the rating-norm chunk (a fact about the user, not a decaying belief)."""
    return chunk.facet == NORM_FACET


@dataclass(frozen=True, slots=True)
class RatingNorm:
    """The ratings counted so far: their mean as a ``level`` in [0, 1] of the scale, how
    many, and the position of the last. The level is what the chunk stores as its
    strength, so the norm continues from a stored chunk exactly as within one call."""

    count: int = 0
    level: float = (CENTRE - SCALE_LOW) / (SCALE_HIGH - SCALE_LOW)
    through: int = NO_POSITION

    @staticmethod
    def of(snapshot: UserSnapshot) -> RatingNorm:
        """The norm stored in the snapshot, or a new user's."""
        chunk = norm_chunk(snapshot)
        if chunk is None:
            return RatingNorm()
        return RatingNorm(chunk.evidence_count, chunk.strength, chunk.through)

    @property
    def mean(self) -> float:
        return SCALE_LOW + self.level * (SCALE_HIGH - SCALE_LOW)

    @property
    def baseline(self) -> float:
        """The rating this user gives when indifferent: their mean, shrunk to the centre."""
        return (self.mean * self.count + CENTRE * PRIOR_RATINGS) / (self.count + PRIOR_RATINGS)

    def weight(self, value: float) -> float:
        """A rating as signed evidence in [-1, 1]: its distance from the baseline, per 2 stars."""
        return max(-1.0, min(1.0, (value - self.baseline) / 2.0))

    def counted(self, position: int) -> bool:
        return position <= self.through

    def add(self, value: float, position: int) -> RatingNorm:
        """The norm with one more rating (clamped to the scale) at ``position``."""
        if self.counted(position):
            return self
        value = max(SCALE_LOW, min(SCALE_HIGH, value))
        count = self.count + 1
        level = (value - SCALE_LOW) / (SCALE_HIGH - SCALE_LOW)
        return RatingNorm(count, self.level + (level - self.level) / count, position)


def norm_chunk(snapshot: UserSnapshot) -> PreferenceChunk | None:
    return next((c for c in snapshot.chunks if is_norm(c)), None)


@dataclass(frozen=True, slots=True)
class Rated:
    """One rating that joined the norm: the norm after it, and the event."""

    norm: RatingNorm
    event_id: str
    ts: float


def norm_after(
    before: PreferenceChunk | None,
    snapshot: UserSnapshot,
    embedding: tuple[float, ...],
    steps: list[Rated],
) -> PreferenceChunk:
    """The user's ``rating_norm`` chunk once ``steps`` (at least one) have joined it."""
    chunk = before
    for step in steps:
        n = step.norm
        if chunk is None:
            chunk = PreferenceChunk(
                chunk_id=chunk_id_for(snapshot.tenant, snapshot.user_id, NORM_FACET, NORM_KEY),
                tenant=snapshot.tenant, user_id=snapshot.user_id, facet=NORM_FACET, key=NORM_KEY,
                topic=NORM_TOPIC, text="", embedding=embedding, polarity=Polarity.LIKE,
                strength=n.level, evidence=(step.event_id,), evidence_ts=(step.ts,),
                evidence_count=n.count, first_seen=step.ts, last_seen=step.ts, through=n.through,
            )  # fmt: skip
        else:
            chunk = chunk.add_evidence(step.event_id, step.ts, n.through, strength=n.level)
    if chunk is None:
        raise ValueError("no rating to build the norm from")
    last = steps[-1].norm
    text = f"rates {last.mean:.2f} of {SCALE_HIGH:g} on average ({last.count} ratings)"
    return replace(chunk, text=text)
