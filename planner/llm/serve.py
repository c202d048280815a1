"""``beliefstream llm-serve``: the packaged local model behind an OpenAI-compatible chat API.

Several workers can then share one loaded model (``OpenAIBackend`` pointed here)
instead of each paying its load and memory, and the OpenAI backend is tested
against a real model. A ``json_schema`` response format whose properties are all
string enums becomes a script of literal JSON and choice points, so the answer
always parses and matches; any other schema is refused (400) rather than answered
unconstrained. The model is not thread-safe: calls run one at a time, off the loop.
"""

from __future__ import annotations

import hmac
import json
import logging
import threading
import time
import uuid
from pathlib import Path
from typing import Annotated, Any, Literal

from fastapi import Depends, FastAPI, HTTPException, Security
from fastapi.concurrency import run_in_threadpool
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, ConfigDict, Field

from planner.backend import Choice, Script
from planner.llm.local import LocalLLM

__all__ = [
    "DEFAULT_MAX_TOKENS",
    "ChatRequest",
    "SchemaError",
    "answer_text",
    "create_app",
    "script_for_schema",
    "serve",
]

log = logging.getLogger(__name__)

DEFAULT_MAX_TOKENS = 256  # free text when the request names no limit
_OBJECT_KEYS = {"type", "properties", "required", "additionalProperties", "title", "description"}
_PROPERTY_KEYS = {"type", "enum", "title", "description"}
# Module-level: FastAPI resolves the dependency's (stringified) annotations in this namespace.
_bearer = HTTPBearer(auto_error=False, description="The key given to llm-serve, if any.")


class SchemaError(ValueError):
    """A response schema this server cannot force: only flat objects of string enums."""


def script_for_schema(schema: Any) -> Script:
    """The answer to a flat string-enum object schema as a script: ``{"key": "`` choice ``"}``.

    Each option is its JSON-escaped text plus the closing quote, so distinct
    options are prefix-free (as the local backend needs) and any pick is valid JSON.
    """
    if not isinstance(schema, dict) or schema.get("type") != "object":
        raise SchemaError('only {"type": "object"} schemas are supported')
    unknown = sorted(set(schema) - _OBJECT_KEYS)
    if unknown:
        raise SchemaError(f"unsupported schema keywords: {unknown}")
    properties = schema.get("properties", {})
    if not isinstance(properties, dict):
        raise SchemaError("properties must be an object")
    required = schema.get("required", [])
    if not isinstance(required, list) or not set(required) <= set(properties):
        raise SchemaError("required must list property names")
    script: list[str | Choice] = []
    opening = "{"
    for key, spec in properties.items():
        if not isinstance(spec, dict) or set(spec) - _PROPERTY_KEYS:
            raise SchemaError(f"property {key!r} must be a plain string enum, not {spec!r}")
        enum = spec.get("enum")
        if spec.get("type", "string") != "string" or not isinstance(enum, list) or not enum:
            raise SchemaError(f"property {key!r} needs a non-empty string enum")
        if not all(isinstance(o, str) for o in enum) or len(set(enum)) != len(enum):
            raise SchemaError(f"property {key!r}: enum values must be distinct strings")
        script.append(f'{opening}{json.dumps(key, ensure_ascii=False)}: "')
        script.append(Choice(tuple(json.dumps(o, ensure_ascii=False)[1:] for o in enum)))
        opening = ", "
    script.append("}" if properties else "{}")
    return script


def answer_text(script: Script, picks: tuple[int, ...]) -> str:
    """The scripted answer with each choice point replaced by its pick."""
    chosen = iter(picks)
    return "".join(p if isinstance(p, str) else p.options[next(chosen)] for p in script)


class Message(BaseModel):
    model_config = ConfigDict(extra="ignore")

    role: str
    content: str


class JsonSchema(BaseModel):
    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    name: str = "answer"
    schema_: Any = Field(alias="schema")
    strict: bool | None = None


class ResponseFormat(BaseModel):
    type: Literal["text", "json_schema"]
    json_schema: JsonSchema | None = None


class ChatRequest(BaseModel):
    """The chat-completions fields this server honours; sampling knobs are ignored (greedy)."""

    model_config = ConfigDict(extra="ignore")

    model: str = ""
    messages: list[Message] = Field(min_length=1)
    max_tokens: int | None = Field(default=None, ge=1)
    max_completion_tokens: int | None = Field(default=None, ge=1)
    response_format: ResponseFormat | None = None
    stream: bool = False
    n: int = 1


def _roles(body: ChatRequest) -> tuple[str, str]:
    """(system, user): one optional system message then one user message, nothing else."""
    roles = [m.role for m in body.messages]
    if roles not in (["user"], ["system", "user"]):
        raise HTTPException(400, f"messages must be [system,] user (no history); got {roles}")
    return ("" if len(roles) == 1 else body.messages[0].content), body.messages[-1].content


def _limit(body: ChatRequest) -> int | None:
    given = [n for n in (body.max_tokens, body.max_completion_tokens) if n is not None]
    return min(given) if given else None


def _completion(model: str, content: str, finish: str, prompt: int, new: int) -> dict[str, Any]:
    return {
        "id": f"chatcmpl-{uuid.uuid4().hex}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": content},
                "finish_reason": finish,
            }
        ],
        "usage": {"prompt_tokens": prompt, "completion_tokens": new, "total_tokens": prompt + new},
    }


def create_app(llm: LocalLLM, api_key: str | None = None) -> FastAPI:
    """``GET /v1/models`` and ``POST /v1/chat/completions`` over ``llm``, one call at a time."""
    app = FastAPI(title="beliefstream llm-serve", version="1")
    # Held in the worker thread, so a request cancelled while waiting cannot free it early.
    lock = threading.Lock()

    async def authorise(
        given: Annotated[HTTPAuthorizationCredentials | None, Security(_bearer)],
    ) -> None:
        if api_key is None:
            return
        token = given.credentials if given is not None else ""
        if not hmac.compare_digest(token.encode(), api_key.encode()):
            raise HTTPException(401, "missing or wrong Bearer API key")

    guard = [Depends(authorise)]

    @app.get("/v1/models", dependencies=guard)
    async def models() -> dict[str, Any]:
        card = {"id": llm.model, "object": "model", "created": 0, "owned_by": "beliefstream"}
        return {"object": "list", "data": [card]}

    def choose(system: str, user: str, script: Script, limit: int | None) -> dict[str, Any]:
        with lock:
            # The answer's bound: this script's tokens beyond the prompt's (longest options).
            bound = llm.max_tokens(system, user, script) - llm.max_tokens(system, user, [])
            if limit is not None and bound > limit:
                raise HTTPException(
                    400, f"the schema's longest answer takes {bound} tokens; max_tokens is {limit}"
                )
            result = llm.choose(system, user, script)
        content = answer_text(script, result.picks)
        return _completion(llm.model, content, "stop", result.prompt_tokens,
                           result.completion_tokens)  # fmt: skip

    def generate(system: str, user: str, limit: int | None) -> dict[str, Any]:
        most = limit or DEFAULT_MAX_TOKENS
        with lock:
            text, prompt, new = llm.generate(system, user, most)
        return _completion(llm.model, text, "length" if new >= most else "stop", prompt, new)

    @app.post("/v1/chat/completions", dependencies=guard)
    async def chat(body: ChatRequest) -> dict[str, Any]:
        """A greedy answer; with a json_schema format, forced to match it."""
        system, user = _roles(body)
        if body.stream or body.n != 1:
            raise HTTPException(400, "only one unstreamed answer per request (stream=false, n=1)")
        fmt = body.response_format
        if fmt is None or fmt.type == "text":
            return await run_in_threadpool(generate, system, user, _limit(body))
        if fmt.json_schema is None:
            raise HTTPException(400, "response_format json_schema needs a json_schema field")
        try:
            script = script_for_schema(fmt.json_schema.schema_)
        except SchemaError as exc:
            raise HTTPException(400, f"unsupported json_schema: {exc}") from exc
        return await run_in_threadpool(choose, system, user, script, _limit(body))

    return app


def serve(host: str, port: int, cache_dir: Path | None, api_key: str | None) -> None:
    """Load the model (seconds; ~30 s the first time), then serve until interrupted."""
    import uvicorn

    logging.basicConfig(level=logging.INFO)
    llm = LocalLLM.load(cache_dir)
    log.info("loaded %s from %s in %.1fs", llm.model, llm.load_info.source, llm.load_info.seconds)
    if api_key is None and host not in ("127.0.0.1", "localhost", "::1"):
        log.warning("serving on %s without an API key: anyone reaching it can use the model", host)
    uvicorn.run(create_app(llm, api_key), host=host, port=port, log_level="info")
