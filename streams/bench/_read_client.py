"""The read benchmark's client, run in its own process: ``python -m streams.bench._read_client``.

``py``: the Python ``MemoryReader`` over the store, cold reads (first read of a
user, straight from LanceDB) and warm reads (cached, the ranker's steady state).
``http``: concurrent requests against a running ``beliefstream serve``.
Each prints one JSON object on stdout.
"""

from __future__ import annotations

import asyncio
import json
import random
import sys
import time
from typing import Any

import numpy as np

__all__ = ["main", "percentiles"]


def percentiles(samples_s: list[float], prefix: str) -> dict[str, float]:
    """p50/p99 in milliseconds."""
    ms = np.array(samples_s) * 1000.0
    return {
        f"{prefix}_p50_ms": round(float(np.percentile(ms, 50)), 3),
        f"{prefix}_p99_ms": round(float(np.percentile(ms, 99)), 3),
    }


def _timed(fn: Any, *args: Any, **kwargs: Any) -> float:
    started = time.perf_counter()
    fn(*args, **kwargs)
    return time.perf_counter() - started


def run_python(uri: str, users: int, hot: int, reads: int, tenant: str) -> dict[str, Any]:
    from memory_store.embedding import DIMENSION, MiniLMEmbedder
    from memory_store.lance.catalogue import open_catalogue
    from memory_store.lance.store import open_store
    from memory_store.reader import MemoryReader

    embedder = MiniLMEmbedder()
    embedder(["warm up"])
    reader = MemoryReader(
        open_store(uri), open_catalogue(uri), embedder, cache_users=hot, dimension=DIMENSION
    )
    rng = random.Random(11)
    hot_users = [f"u{u}" for u in rng.sample(range(users), min(hot, users))]
    cold = [_timed(reader.get_user_memory, tenant, u, k=10) for u in hot_users]
    warm = [
        _timed(reader.get_user_memory, tenant, rng.choice(hot_users), k=10) for _ in range(reads)
    ]
    queries = ["space adventures", "funny films", "scary movies", "old westerns", "romance"]
    for q in queries:
        reader.retrieve(tenant, hot_users[0], query=q, k=5)
    retrieve = [
        _timed(reader.retrieve, tenant, rng.choice(hot_users), query=rng.choice(queries), k=5)
        for _ in range(reads)
    ]
    stats = reader.stats()
    return {
        **percentiles(warm, "py"),
        **percentiles(cold, "py_cold"),
        **percentiles(retrieve, "py_retrieve"),
        "py_reads": reads,
        "py_hot_users": len(hot_users),
        "py_cache_hits": stats.hits,
        "py_cache_misses": stats.misses,
    }


async def _http_load(
    url: str, key: str, tenant: str, hot_users: list[str], seconds: float, concurrency: int
) -> dict[str, Any]:
    """``concurrency`` keep-alive clients (aiohttp: the lightest client here, so the
    server, not the load generator, gets most of the shared CPU)."""
    import aiohttp

    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(
        base_url=url, headers={"X-API-Key": key}, connector=connector
    ) as session:
        for user in hot_users:  # warm the server's cache: steady state, as for a ranker
            async with session.get(f"/v1/tenants/{tenant}/users/{user}/memory") as resp:
                resp.raise_for_status()
                await resp.read()
        latencies: list[float] = []
        errors = 0
        deadline = time.monotonic() + seconds
        rng = random.Random(5)

        async def one_client() -> None:
            nonlocal errors
            while time.monotonic() < deadline:
                user = rng.choice(hot_users)
                started = time.perf_counter()
                async with session.get(f"/v1/tenants/{tenant}/users/{user}/memory?k=10") as r:
                    await r.read()
                    errors += r.status != 200
                latencies.append(time.perf_counter() - started)

        started = time.monotonic()
        await asyncio.gather(*(one_client() for _ in range(concurrency)))
        elapsed = time.monotonic() - started
    return {
        **percentiles(latencies, "http"),
        "http_rps": round(len(latencies) / elapsed, 1),
        "http_requests": len(latencies),
        "http_errors": errors,
        "http_concurrency": concurrency,
    }


def main(argv: list[str]) -> None:
    mode, args = argv[0], json.loads(argv[1])
    result = run_python(**args) if mode == "py" else asyncio.run(_http_load(**args))
    sys.stdout.write(json.dumps(result) + "\n")


if __name__ == "__main__":
    main(sys.argv[1:])
