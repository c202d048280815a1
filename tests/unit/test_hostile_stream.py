"""10^5 generated events, valid and hostile, through validation and the memory's pure code.

Hypothesis draws each stream's shape (users, items, value ranges, the share and kind of
damage); a seeded expansion turns it into 1,000 messages, so 100 examples pass 100,000
events. Nothing may raise: every message is an Interaction or a Rejection with a reason;
the valid ones fold into each user's memory and go through every maintenance operation;
the memory keeps its invariants (strengths in [0, 1], every chunk with evidence).
"""

from __future__ import annotations

import json
import random
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from memory_store.events import Interaction, Item
from memory_store.lifecycle import PlannedStep, run_planned
from memory_store.operations import LifecycleParams, absorb_stream
from memory_store.tiers import Operation, UserSnapshot, apply_delta
from streams.ingest.contract import Limits, Rejection, decode_interaction
from tests.unit.fake_embedding import fake_embed

P = LifecycleParams()
NOW = 1_800_000_000.0
LIMITS = Limits(max_bytes=4096, max_future_skew_s=300, tenants=frozenset())
PER_EXAMPLE = 1000
TYPES = ["view", "click", "like", "dislike", "rate", "purchase", "skip", "share", "play"]
GENRES = ["Comedy", "Drama", "Horror", "Sci-Fi", "Romance", "\x1f", "", "x" * 300]
DAMAGE = [
    lambda e, r: e.pop(r.choice(list(e))),  # a field missing
    lambda e, r: e.__setitem__("user_id", r.choice([7, None, "", "u\x1f1", [], "\x00"])),
    lambda e, r: e.__setitem__("value", r.choice(["4", float("nan"), 1e308, -1e308, True])),
    lambda e, r: e.__setitem__("ts", r.choice([-1, "soon", 9e18, NOW + 10_000, None])),
    lambda e, r: e.__setitem__("type", r.choice(["teleport", 3, ""])),
    lambda e, r: e.__setitem__("text", "ü" * r.randint(1, 9000)),
    lambda e, r: e.__setitem__("context", r.choice([[1], "x", {"deep": {"er": [1] * 50}}])),
]


def _items(rng: random.Random, n: int) -> dict[str, Item]:
    return {
        f"i{k}": Item(tenant="acme", item_id=f"i{k}", title=f"Film {k}", ts=0,
                      attributes={"genres": rng.sample(GENRES, rng.randint(0, 3)),
                                  "year": rng.choice([1920, 1999, 2024, -5, "n/a", None])})
        for k in range(n)
    }  # fmt: skip


def _messages(seed: int, users: int, items: int, damaged: float, spread: float) -> list[bytes]:
    rng = random.Random(seed)
    out: list[bytes] = []
    for n in range(PER_EXAMPLE):
        kind = rng.choice(TYPES)
        event: dict[str, Any] = {
            "event_id": f"e{seed}-{rng.randint(0, PER_EXAMPLE)}",  # replays included
            "tenant": "acme", "user_id": f"u{rng.randrange(users)}",
            "item_id": f"i{rng.randrange(items + 3)}",  # some items never known
            "type": kind, "ts": 1_600_000_000 + n * spread + rng.random(),
        }  # fmt: skip
        if kind == "rate":
            event["value"] = rng.choice([rng.uniform(-3, 8), 1, 5, 0])
        if rng.random() < damaged:
            rng.choice(DAMAGE)(event, rng)
        raw = json.dumps(event).encode() if rng.random() > 0.01 else rng.randbytes(20)
        out.append(raw)
    return out


@settings(max_examples=100, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow])  # fmt: skip
@given(
    seed=st.integers(0, 2**32),
    users=st.integers(1, 40),
    items=st.integers(1, 60),
    damaged=st.floats(0.0, 0.5),
    spread=st.sampled_from([0.0, 1.0, 3600.0, 86_400.0 * 30]),
)
def test_generated_streams_never_crash_validation_or_the_memory(
    seed: int, users: int, items: int, damaged: float, spread: float
) -> None:
    catalogue = _items(random.Random(seed), items)
    by_user: dict[str, list[Interaction]] = {}
    for raw in _messages(seed, users, items, damaged, spread):
        out = decode_interaction(raw, NOW, LIMITS)
        if isinstance(out, Rejection):
            assert out.reason.value and out.detail is not None
            continue
        by_user.setdefault(out.user_id, []).append(out)
    steps = [PlannedStep(op, P) for op in (Operation.CONSOLIDATION, Operation.FORGETTING,
                                           Operation.RESYNTHESIS)]  # fmt: skip
    for user, events in by_user.items():
        snap = UserSnapshot("acme", user)
        got = absorb_stream(snap, sorted(events, key=lambda e: e.ts), catalogue, P, fake_embed)
        snap = apply_delta(snap, got.delta)
        later = max(e.ts for e in events) + 86_400 * 200
        snap = apply_delta(snap, run_planned(snap, steps, later, fake_embed))
        for chunk in snap.chunks:
            assert 0.0 <= chunk.strength <= 1.0
            assert chunk.evidence_count >= 1 and chunk.evidence
