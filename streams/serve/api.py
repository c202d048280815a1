"""The read service rankers call: user memory, matching beliefs and candidate items, over HTTP.

Each API key belongs to one tenant, and a key can only read its own tenant's
users. Handlers are plain ``def``: FastAPI runs them in its thread pool, so a
LanceDB read or an embedding never blocks the event loop. ``serve`` wires the
reader to the change feed, so the cache follows the workers' writes.
"""

from __future__ import annotations

import hmac
import logging
import threading
from collections.abc import Awaitable, Callable, Mapping
from typing import Annotated, Any

from fastapi import Depends, FastAPI, HTTPException, Path, Query, Security
from fastapi.concurrency import run_in_threadpool
from fastapi.security import APIKeyHeader

from memory_store.candidates import COLLAB, CONTENT, CodebookUnavailableError
from memory_store.codebook.item_codebook import (
    ItemCodebook,
    UnknownFacetError,
    UnknownTenantError,
)
from memory_store.keys import ID_PATTERN
from memory_store.reader import MemoryReader, UnknownItemError
from streams.serve.errors import (
    MAX_BODY_BYTES,
    install_error_handling,
    invalid,
    no_unknown_query,
)
from streams.serve.metrics import ServeMetrics, instrument
from streams.serve.models import (
    MAX_K,
    CandidatesOut,
    ErrorOut,
    HealthOut,
    MemoriesIn,
    MemoriesOut,
    MemoryOut,
    RetrieveIn,
    RetrieveOut,
    ScoredChunkOut,
)
from streams.settings import Settings

__all__ = ["create_app", "serve"]

log = logging.getLogger(__name__)

_MEMORY = "/v1/tenants/{tenant}/users/{user_id}/memory"
_RETRIEVE = "/v1/tenants/{tenant}/users/{user_id}/retrieve"
_CANDIDATES = "/v1/tenants/{tenant}/users/{user_id}/candidates"
_MEMORIES = "/v1/tenants/{tenant}/memories"
# How often the server indexes items the worker assigned: two small LanceDB reads per loaded
# tenant (a few ms), so a new item is a candidate well within 1 s of its batch's flush.
_SYNC_EVERY_S = 0.2
_ERRORS: dict[int | str, dict[str, object]] = {
    401: {"model": ErrorOut, "description": "Missing or unknown X-API-Key."},
    403: {"model": ErrorOut, "description": "The key belongs to another tenant."},
}
_BODY_ERRORS: dict[int | str, dict[str, object]] = {
    400: {"model": ErrorOut, "description": "A body that cannot be read (not UTF-8 JSON)."},
    413: {"model": ErrorOut, "description": f"A request body over {MAX_BODY_BYTES} bytes."},
}


Id = Annotated[str, Path(min_length=1, max_length=256, pattern=ID_PATTERN)]
# The facets an item codebook may have; which of them a tenant's has is its own (404 if not).
_FACETS = rf"^({CONTENT}|{COLLAB})(,({CONTENT}|{COLLAB}))*$"

_api_key = APIKeyHeader(name="X-API-Key", auto_error=False, description="The tenant's API key.")


def _authoriser(api_keys: Mapping[str, str]) -> Callable[..., Awaitable[None]]:
    keys = [(key.encode(), tenant) for key, tenant in api_keys.items()]

    async def authorise(tenant: Id, key: Annotated[str | None, Security(_api_key)]) -> None:
        given = (key or "").encode()
        owner = None
        for known, known_tenant in keys:  # every key compared, in constant time
            if hmac.compare_digest(known, given):
                owner = known_tenant
        if not key or owner is None:
            raise HTTPException(401, "missing or unknown X-API-Key")
        if owner != tenant:
            raise HTTPException(403, f"this API key may not read tenant {tenant!r}")

    return authorise


_AS_OF = "Point-in-time read: the memory as it stood at this event time (epoch s)."


def create_app(
    reader: MemoryReader, api_keys: Mapping[str, str], metrics: ServeMetrics | None = None
) -> FastAPI:
    """The read API over ``reader``; ``api_keys`` maps each key to the tenant it may read."""
    app = FastAPI(title="beliefstream memory", version="1",
                  dependencies=[Depends(no_unknown_query)])  # fmt: skip
    instrument(app, metrics or ServeMetrics())
    install_error_handling(app)
    guard = [Depends(_authoriser(dict(api_keys)))]

    @app.get("/healthz", response_model=HealthOut)
    async def healthz() -> HealthOut:
        return HealthOut()

    @app.get(_MEMORY, response_model=MemoryOut, dependencies=guard, responses=_ERRORS)
    async def memory(
        tenant: Id,
        user_id: Id,
        k: Annotated[int, Query(ge=0, le=MAX_K)] = 10,
        as_of: Annotated[float | None, Query(allow_inf_nan=False, description=_AS_OF)] = None,
    ) -> MemoryOut:
        """Profile, the k strongest beliefs (decayed to now) and recent events."""
        if as_of is not None:
            past = await run_in_threadpool(reader.get_user_memory, tenant, user_id, k, as_of)
            return MemoryOut.model_validate(past)
        # A cache hit is answered on the event loop; a miss reads LanceDB in a worker thread.
        view = reader.cached_user_memory(tenant, user_id, k)
        if view is None:
            view = await run_in_threadpool(reader.get_user_memory, tenant, user_id, k)
        return MemoryOut.model_validate(view)

    @app.post(_MEMORIES, response_model=MemoriesOut, dependencies=guard,
              responses={**_ERRORS, **_BODY_ERRORS})  # fmt: skip
    def memories(tenant: Id, body: MemoriesIn) -> MemoriesOut:
        """``memory`` for many users at once (a ranker scoring a batch): one store read for
        every user not cached."""
        points = body.points()
        if points is not None:
            past = reader.get_user_memories_as_of(tenant, points, body.k)
            return MemoriesOut(tenant=tenant, memories=[MemoryOut.model_validate(v) for v in past])
        views = reader.get_user_memories(tenant, body.user_ids or [], body.k)
        return MemoriesOut(
            tenant=tenant, memories=[MemoryOut.model_validate(v) for v in views.values()]
        )

    @app.post(
        _RETRIEVE,
        response_model=RetrieveOut,
        dependencies=guard,
        responses={
            **_ERRORS,
            **_BODY_ERRORS,
            404: {"model": ErrorOut, "description": "Unknown item ids."},
        },
    )
    def retrieve(tenant: Id, user_id: Id, body: RetrieveIn) -> RetrieveOut:
        """The k beliefs best matching a text, an embedding or items (cosine x strength)."""
        query = body.query if body.query is not None else body.embedding
        try:
            found = reader.retrieve(tenant, user_id, query, body.item_ids, body.k, body.as_of)
        except UnknownItemError as exc:
            raise HTTPException(404, str(exc)) from exc
        except ValueError as exc:  # e.g. an embedding of another dimension than the memory's
            raise invalid(str(exc)) from exc
        chunks = [ScoredChunkOut.model_validate(c) for c in found]
        return RetrieveOut(tenant=tenant, user_id=user_id, chunks=chunks)

    @app.get(
        _CANDIDATES,
        response_model=CandidatesOut,
        dependencies=guard,
        responses={
            **_ERRORS,
            404: {
                "model": ErrorOut,
                "description": "The tenant has no item codebook, or not that facet.",
            },
            503: {"model": ErrorOut, "description": "The server has no item codebook."},
        },
    )
    def candidates(
        tenant: Id,
        user_id: Id,
        k: Annotated[int, Query(ge=0, le=MAX_K)] = 100,
        facets: Annotated[
            list[Annotated[str, Query(pattern=_FACETS)]] | None,
            Query(description="Facets to query, repeated or comma-separated (default: all)."),
        ] = None,
    ) -> CandidatesOut:
        """Items for the user from the item codebook (no ANN search): the code paths of the
        user's strongest liked chunks and recent items, re-scored exactly."""
        wanted = [f.strip() for v in facets or () for f in v.split(",") if f.strip()] or None
        try:
            items = reader.candidates(tenant, user_id, k, wanted)
        except CodebookUnavailableError as exc:
            raise HTTPException(503, str(exc)) from exc
        except (UnknownTenantError, UnknownFacetError) as exc:
            raise HTTPException(404, str(exc)) from exc
        return CandidatesOut(tenant=tenant, user_id=user_id, items=items)

    _exact_embedding_length(app, reader.dimension)
    return app


def _exact_embedding_length(app: FastAPI, dimension: int) -> None:
    """The schema names the embedding length this memory holds, so a query of another
    length is refused by the schema as the server refuses it."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = build()
            embedding = schema["components"]["schemas"]["RetrieveIn"]["properties"]["embedding"]
            embedding["minItems"] = embedding["maxItems"] = dimension
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def _follow(codebook: ItemCodebook, stop: threading.Event) -> None:
    """Index what the worker assigned, every ``_SYNC_EVERY_S``, until ``stop``."""
    while not stop.wait(_SYNC_EVERY_S):
        try:
            codebook.sync()
        except Exception:  # a failed look is retried at the next tick
            log.exception("item codebook sync failed")


def serve(settings: Settings) -> None:
    """Serve the read API until interrupted, its cache invalidated by the change feed."""
    import uvicorn

    from memory_store.codebook.store import CodebookStore
    from memory_store.embedding import DIMENSION, MiniLMEmbedder
    from memory_store.lance.catalogue import open_catalogue
    from memory_store.lance.store import open_store
    from streams.serve.change_feed import ChangeFeed

    logging.basicConfig(level=settings.log_level)
    settings.apply_storage()
    if not settings.api_keys:
        log.warning("no API keys configured (BELIEFSTREAM_API_KEYS): every request gets 401")
    embedder = MiniLMEmbedder()
    embedder(["warm up"])  # load the model now, not in the first request (seconds)
    codebook = ItemCodebook(store=CodebookStore(settings.lancedb_uri))  # tenants load lazily
    reader = MemoryReader(
        open_store(settings.lancedb_uri),
        open_catalogue(settings.lancedb_uri, cache_ttl_s=60),
        embedder,
        cache_users=settings.reader_cache_users,
        dimension=DIMENSION,
        decay_in_event_time=settings.reader_event_time,
        codebook=codebook,
    )
    stop = threading.Event()
    threading.Thread(target=_follow, args=(codebook, stop), daemon=True).start()
    # Users cached before the feed is positioned are dropped once it is.
    feed = ChangeFeed(settings, reader.invalidate, on_ready=reader.clear)
    feed.start()
    try:  # uvicorn re-raises SIGTERM/SIGINT after its graceful shutdown: the daemon feed dies
        uvicorn.run(
            create_app(reader, settings.api_keys),
            host=settings.serve_host,
            port=settings.serve_port,
            log_level=settings.log_level.lower(),
        )
    finally:
        stop.set()
        feed.stop()
