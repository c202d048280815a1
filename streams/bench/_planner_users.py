"""Synthetic users and a timing harness for the planner benchmark.

The users are real ``UserSnapshot`` values (random but seeded) run through
``summarize``, so a benchmark times the same path a worker takes; they cover the
cases the policies tell apart: new events, near-duplicates, faded beliefs,
expired events, missing or drifted profiles, idle users.
"""

from __future__ import annotations

import random
import time
from collections.abc import Sequence
from dataclasses import dataclass

from memory_store.events import Interaction
from memory_store.operations import LifecycleParams
from memory_store.tiers import Operation, Polarity, PreferenceChunk, Profile, UserSnapshot
from memory_store.tiers import chunk_id_for as _cid
from planner.policies import Policy
from planner.summary import LastRun, OperationClock, UserSummary, summarize

__all__ = ["PolicyBench", "bench_policy", "synthetic_snapshot", "synthetic_summaries"]

_DAY = 86_400.0
_TOPICS = {
    "genre": ["Comedy", "Drama", "Horror", "Sci-Fi", "Science Fiction", "Romance", "Thriller"],
    "decade": ["1970s", "1980s", "1990s", "2000s"],
    "director": ["Kubrick", "Nolan", "Varda", "Ozu"],
}


def _chunk(rng: random.Random, tenant: str, user: str, facet: str, topic: str, now: float,
           vector: list[float]) -> PreferenceChunk:  # fmt: skip
    count = rng.randint(1, 40)
    last = now - rng.uniform(0, 400) * _DAY
    ids = tuple(f"{user}-{topic}-{i}" for i in range(min(count, 32)))
    times = tuple(last - (len(ids) - 1 - i) * 60.0 for i in range(len(ids)))
    polarity = Polarity.LIKE if rng.random() < 0.75 else Polarity.DISLIKE
    return PreferenceChunk(
        chunk_id=_cid(tenant, user, facet, topic.lower()),
        tenant=tenant,
        user_id=user,
        facet=facet,
        key=topic.lower(),
        topic=topic,
        text=f"{polarity.value}s {topic}",
        embedding=tuple(vector),
        polarity=polarity,
        strength=rng.uniform(0.02, 1.0),
        evidence=ids,
        evidence_ts=times,
        evidence_count=count,
        first_seen=times[0],
        last_seen=last,
        version=rng.randint(1, 5),
    )


def synthetic_snapshot(rng: random.Random, tenant: str, user: str, now: float) -> UserSnapshot:
    """One random user: up to 15 beliefs (some near-duplicate), up to 60 events, maybe a profile."""
    chunks: list[PreferenceChunk] = []
    base = {t: [rng.gauss(0, 1) for _ in range(8)] for ts in _TOPICS.values() for t in ts}
    base["Science Fiction"] = [x + rng.gauss(0, 0.05) for x in base["Sci-Fi"]]
    for facet, topics in _TOPICS.items():
        for topic in rng.sample(topics, rng.randint(0, min(5, len(topics)))):
            chunks.append(_chunk(rng, tenant, user, facet, topic, now, base[topic]))
    events = [
        Interaction(
            event_id=f"{user}-e{i}",
            tenant=tenant,
            user_id=user,
            item_id=f"item-{rng.randint(1, 500)}",
            type="view",  # type: ignore[arg-type]
            ts=now - rng.uniform(0, 500) * _DAY,
        )
        for i in range(rng.randint(0, 60))
    ]
    profile = None
    if chunks and rng.random() < 0.7:
        sources = rng.sample(chunks, min(len(chunks), rng.randint(1, 8)))
        profile = Profile(
            tenant=tenant,
            user_id=user,
            narrative="synthetic",
            embedding=(),
            version=1,
            sources=tuple((c.chunk_id, c.version) for c in sources),
            built_at=now - rng.uniform(0, 60) * _DAY,
        )
    return UserSnapshot(tenant, user, tuple(chunks), profile, tuple(events))


def synthetic_summaries(
    n: int, seed: int = 0, now: float = 1_700_000_000.0, params: LifecycleParams | None = None
) -> list[UserSummary]:
    """``n`` summaries of seeded random users, with random operation clocks."""
    rng = random.Random(seed)
    params = params or LifecycleParams(max_events_per_user=50)
    out = []
    for i in range(n):
        snap = synthetic_snapshot(rng, "bench", f"user-{i}", now)
        total = len(snap.events) + rng.randint(0, 200)
        runs = {
            op: LastRun(now - rng.uniform(0, 10) * _DAY, total - rng.choice((0, 0, 3, 40)))
            for op in Operation
            if rng.random() < 0.8
        }
        out.append(summarize(snap, OperationClock(total, runs), now, params))
    return out


@dataclass(frozen=True, slots=True)
class PolicyBench:
    """Decisions per second and per-decision latency of one policy over the given users."""

    policy: str
    decisions: int
    seconds: float
    decisions_per_s: float
    p50_s: float
    p99_s: float
    ops_planned: int


def _quantile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else 0.0


def bench_policy(policy: Policy, summaries: Sequence[UserSummary], batch: int = 1) -> PolicyBench:
    """Run ``policy`` over ``summaries`` ``batch`` users a call; a user's latency is its call's."""
    latencies: list[float] = []
    ops = 0
    started = time.perf_counter()
    for i in range(0, len(summaries), batch):
        part = summaries[i : i + batch]
        t0 = time.perf_counter()
        plans = policy.decide(part)
        latencies += [time.perf_counter() - t0] * len(part)
        ops += sum(len(p.ops) for p in plans)
    seconds = time.perf_counter() - started
    return PolicyBench(
        policy=policy.name,
        decisions=len(summaries),
        seconds=seconds,
        decisions_per_s=len(summaries) / seconds if seconds > 0 else 0.0,
        p50_s=_quantile(latencies, 0.5),
        p99_s=_quantile(latencies, 0.99),
        ops_planned=ops,
    )
