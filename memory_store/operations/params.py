"""Every tunable of the lifecycle in one frozen value, so a planner can vary them per run."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

__all__ = ["DecayClock", "LifecycleParams"]

DecayClock = Literal["user", "global"]

_DAY = 86_400.0


@dataclass(frozen=True, slots=True)
class LifecycleParams:
    """Tunables of the six operations; the defaults suit ratings and implicit feedback.

    Strengths live in [0, 1]; times are event-time seconds.
    """

    # Evidence with |weight| below this is noise (a rating of 3) and is never counted.
    min_weight: float = 0.05
    # A new chunk starts at |weight| * initial_strength.
    initial_strength: float = 0.5
    # Agreeing evidence: s + rate * |w| * (1 - s).
    reinforcement_rate: float = 0.3
    # Contradicting evidence: s - rate * |w| * s.
    weakening_rate: float = 0.4
    # Below this strength a strong contradiction flips polarity ...
    flip_threshold: float = 0.2
    # ... where strong means |w| >= this ...
    strong_contradiction: float = 0.5
    # ... and the flipped chunk restarts at |w| * flip_strength.
    flip_strength: float = 0.25
    # Cosine similarity at or above which same-facet, same-polarity chunks merge.
    similarity_threshold: float = 0.92
    # Strength halves every half_life seconds without evidence ...
    half_life: float = 90 * _DAY
    # ... counted on the user's own clock (their newest activity: an idle user's beliefs
    # wait for them) or on everybody's ("global": idleness alone forgets a user).
    decay_clock: DecayClock = "user"
    # A chunk whose decayed strength drops below this is forgotten.
    forget_threshold: float = 0.05
    # Events older than this (seconds) leave the event tier ...
    event_ttl: float = 365 * _DAY
    # ... except each user's newest this many, whatever their age (what a sequential
    # ranker reads: a user back after a year still has their history) ...
    min_events_per_user: int = 200
    # ... and a user keeps at most this many events, newest first.
    max_events_per_user: int = 1000
    # Chunks the profile narrative is built from.
    narrative_top_k: int = 8
    # Code-path beliefs (``memory_store.code_paths``) weaker than this fold into their
    # parent prefix once at least ``code_merge_min`` siblings (or the parent) are held.
    code_merge_below: float = 0.25
    code_merge_min: int = 2

    def __post_init__(self) -> None:
        unit = {
            "min_weight": self.min_weight,
            "initial_strength": self.initial_strength,
            "reinforcement_rate": self.reinforcement_rate,
            "weakening_rate": self.weakening_rate,
            "flip_threshold": self.flip_threshold,
            "strong_contradiction": self.strong_contradiction,
            "flip_strength": self.flip_strength,
            "similarity_threshold": self.similarity_threshold,
            "forget_threshold": self.forget_threshold,
            "code_merge_below": self.code_merge_below,
        }
        bad = [name for name, v in unit.items() if not 0.0 <= v <= 1.0]
        if bad:
            raise ValueError(f"must lie in [0, 1]: {', '.join(bad)}")
        if self.half_life <= 0 or self.event_ttl <= 0:
            raise ValueError("half_life and event_ttl must be positive")
        if self.decay_clock not in ("user", "global"):
            raise ValueError(f"decay_clock must be 'user' or 'global', got {self.decay_clock!r}")
        if min(self.min_events_per_user, self.max_events_per_user, self.narrative_top_k) < 0:
            raise ValueError("min/max_events_per_user and narrative_top_k must be >= 0")
        if self.code_merge_min < 1:
            raise ValueError("code_merge_min must be >= 1")

    def decayed(self, strength: float, elapsed: float) -> float:
        """Strength after ``elapsed`` seconds without evidence (never grows back in time)."""
        if elapsed <= 0:
            return strength
        return float(strength * 0.5 ** (elapsed / self.half_life))
