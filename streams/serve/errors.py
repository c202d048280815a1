"""Errors of the read API, as its OpenAPI schema says them.

Every 422 has FastAPI's documented shape (``detail``: a list of ``{loc, msg, type}``),
whether pydantic or a handler found the fault, and never echoes the request (a 10 MB
body once came back as a 10.9 MB reply). A body over ``MAX_BODY_BYTES`` is refused with
413 before it is read whole.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

__all__ = ["MAX_BODY_BYTES", "install_error_handling", "invalid", "no_unknown_query"]

MAX_BODY_BYTES = 1 << 20  # 1,000 user ids or an 8,192-float embedding fit many times over
_MSG_CHARS = 300

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


def invalid(message: str, where: str = "body") -> RequestValidationError:
    """A handler's own 422 in the schema's shape (e.g. a wrong embedding dimension)."""
    return RequestValidationError([{"loc": (where,), "msg": message[:_MSG_CHARS],
                                    "type": "value_error"}])  # fmt: skip


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = [{"loc": list(e.get("loc", ())), "msg": str(e.get("msg", ""))[:_MSG_CHARS],
               "type": str(e.get("type", "value_error"))} for e in exc.errors()[:20]]  # fmt: skip
    return JSONResponse({"detail": errors}, status_code=422)


class _BodyLimit:
    """413 for a body over the limit: by its Content-Length, or once a chunked body passes it."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app, self.limit = app, limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        length = dict(scope.get("headers") or []).get(b"content-length")
        if length is not None and (not length.isdigit() or int(length) > self.limit):
            await _too_large(send, self.limit)
            return
        seen, over, answered = 0, False, False

        async def limited() -> Message:
            nonlocal seen, over
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > self.limit:  # stop reading: the app sees a client that went away
                over = True
                return {"type": "http.disconnect"}
            return message

        async def answer(message: Message) -> None:
            nonlocal answered
            if not over:
                await send(message)
            elif not answered:  # whatever the app says to a cut-off body, the answer is 413
                answered = True
                await _too_large(send, self.limit)

        await self.app(scope, limited, answer)


async def _too_large(send: Send, limit: int) -> None:
    body = b'{"detail":"request body over %d bytes"}' % limit
    await send({"type": "http.response.start", "status": 413,
                "headers": [(b"content-type", b"application/json"),
                            (b"content-length", str(len(body)).encode())]})  # fmt: skip
    await send({"type": "http.response.body", "body": body})


async def no_unknown_query(request: Request) -> None:
    """Refuse query parameters the route does not declare (a misspelt ``as_of`` would
    otherwise read the memory now, silently)."""
    route = request.scope.get("route")
    dependant = getattr(route, "dependant", None)
    known = {p.alias for p in getattr(dependant, "query_params", [])}
    unknown = sorted(set(request.query_params) - known)
    if unknown:
        raise invalid(f"unknown query parameter(s) {unknown[:5]}", "query")


def install_error_handling(app: FastAPI, max_body_bytes: int = MAX_BODY_BYTES) -> None:
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_middleware(_BodyLimit, limit=max_body_bytes)
