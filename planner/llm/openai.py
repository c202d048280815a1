"""The planner's model behind any OpenAI-compatible chat endpoint (llm-serve, vLLM, Ollama, OpenAI).

Several workers can then share one model server instead of each loading its own.
A script becomes one request whose answer a strict JSON schema forces: one string
property per choice point, its ``enum`` the options, its name the literal text
just before the choice, so a remote model decodes each pick right after the same
facts the local backend feeds it. The script is also rendered as a template in
the user message. Anything off in the reply raises: the callers fall back.
"""

from __future__ import annotations

import json
import math
import re
import time
from typing import Any

import httpx

from planner.backend import Choice, ChoiceResult, Script

__all__ = [
    "SCHEMA_NAME",
    "OpenAIBackend",
    "OpenAIBackendError",
    "answer_schema",
    "choice_keys",
    "estimate_tokens",
    "parse_answer",
    "render_template",
    "user_message",
]

SCHEMA_NAME = "script_answer"
_KEY_CHARS = 80  # a key keeps the end of its literal: the facts nearest the choice
_PER_MESSAGE = 8  # chat-template tokens around each message and before the answer
_PIECES = re.compile(r" ?[A-Za-z]+|\s+|.", re.DOTALL)


class OpenAIBackendError(RuntimeError):
    """The endpoint failed or its reply does not answer the request."""


def estimate_tokens(text: str) -> int:
    """A generous token count for byte-level BPE tokenizers, without loading one.

    An ASCII word (with its leading space) counts one token per 3 letters, rounded
    up; a whitespace run one; anything else (a digit, punctuation, a non-ASCII
    character) one per UTF-8 byte, a BPE token's smallest unit. SmolLM2 splits
    digits one by one, so a plain chars/3 would undercount the summaries' numbers;
    this overcounts its real count by ~1.5x on the planner's and narrator's text.
    """
    total = 0
    for match in _PIECES.finditer(text):
        piece = match.group()
        word = piece.lstrip(" ")
        if word.isascii() and word.isalpha():
            total += math.ceil(len(word) / 3)
        elif piece.isspace():
            total += 1
        else:
            total += len(piece.encode())
    return total


def _sanitize(text: str) -> str:
    """One line of printable text without JSON escapes, cut to its last ``_KEY_CHARS``."""
    flat = " ".join(text.replace('"', "'").replace("\\", "/").split())
    flat = "".join(ch for ch in flat if ch.isprintable())
    if len(flat) > _KEY_CHARS:
        flat = "..." + flat[-(_KEY_CHARS - 3) :]
    return flat


def choice_keys(script: Script) -> list[str]:
    """The property name of each choice point: ``c<index>: <the literal text before it>``."""
    keys: list[str] = []
    text = ""
    for part in script:
        if isinstance(part, Choice):
            keys.append(f"c{len(keys)}: {_sanitize(text)}".rstrip())
            text = ""
        else:
            text += part
    return keys


def _choices(script: Script) -> list[Choice]:
    return [part for part in script if isinstance(part, Choice)]


def answer_schema(script: Script) -> dict[str, Any]:
    """A flat strict object schema: one required string enum per choice point, in order."""
    keys = choice_keys(script)
    properties = {
        key: {"type": "string", "enum": list(choice.options)}
        for key, choice in zip(keys, _choices(script), strict=True)
    }
    return {
        "type": "object",
        "properties": properties,
        "required": keys,
        "additionalProperties": False,
    }


def render_template(script: Script) -> str:
    """The script as the model should read it: literal text, each choice as ``[cN: a | b]``."""
    out: list[str] = []
    n = 0
    for part in script:
        if isinstance(part, Choice):
            options = " | ".join(json.dumps(o, ensure_ascii=False) for o in part.options)
            out.append(f" [c{n}: {options}]")
            n += 1
        else:
            out.append(part)
    return "".join(out)


def user_message(user: str, script: Script) -> str:
    """The user's request followed by the script as an answer template to fill."""
    return (
        f"{user}\n\nAnswer with a JSON object: under the key starting with each cN, "
        f"one of the options listed at [cN: ...] in this answer:\n{render_template(script)}"
    )


def parse_answer(content: str, script: Script) -> tuple[int, ...]:
    """The picked option indexes from a reply's JSON, or OpenAIBackendError saying what is off."""
    try:
        answer = json.loads(content)
    except json.JSONDecodeError as exc:
        raise OpenAIBackendError(f"reply is not JSON ({exc}): {content[:200]!r}") from exc
    if not isinstance(answer, dict):
        raise OpenAIBackendError(f"reply is not a JSON object: {content[:200]!r}")
    keys = choice_keys(script)
    extra = sorted(set(answer) - set(keys))
    if extra:
        raise OpenAIBackendError(f"reply has keys the schema lacks: {extra[:3]}")
    picks: list[int] = []
    for key, choice in zip(keys, _choices(script), strict=True):
        if key not in answer:
            raise OpenAIBackendError(f"reply lacks key {key!r}")
        value = answer[key]
        if not isinstance(value, str) or value not in choice.options:
            raise OpenAIBackendError(f"reply for {key!r} is {value!r}, not one of {choice.options}")
        picks.append(choice.options.index(value))
    return tuple(picks)


def _completion_bound(script: Script) -> int:
    """Tokens the longest schema answer may take: every key estimated, every option in bytes.

    Options count one token per UTF-8 byte (a real bound); keys and punctuation go
    through ``estimate_tokens``; two tokens per property cover whitespace a server
    may put between them.
    """
    keys = choice_keys(script)
    total = 2 + 2 * len(keys)
    for key, choice in zip(keys, _choices(script), strict=True):
        total += estimate_tokens(json.dumps(key, ensure_ascii=False) + ": , ")
        total += max(len(json.dumps(o, ensure_ascii=False).encode()) for o in choice.options)
    return total


def _reply(body: Any) -> tuple[str, str | None, int, int]:
    """(content, finish_reason, prompt tokens, completion tokens) of a chat completion."""
    try:
        choice = body["choices"][0]
        message = choice["message"]
        usage = body["usage"]
        prompt_tokens, completion_tokens = usage["prompt_tokens"], usage["completion_tokens"]
    except (KeyError, IndexError, TypeError) as exc:
        raise OpenAIBackendError(f"not a chat completion (no {exc}): {str(body)[:200]}") from exc
    content = message.get("content") if isinstance(message, dict) else None
    if not isinstance(content, str):
        refusal = message.get("refusal") if isinstance(message, dict) else None
        raise OpenAIBackendError(f"reply has no text content (refusal: {refusal!r})")
    if not (isinstance(prompt_tokens, int) and isinstance(completion_tokens, int)):
        raise OpenAIBackendError(f"reply usage is not token counts: {usage!r}")
    return content, choice.get("finish_reason"), prompt_tokens, completion_tokens


class OpenAIBackend:
    """A ``ChoiceBackend`` and narrator ``TextBackend`` over ``{url}/chat/completions``.

    ``url`` is the API base (``http://host:8000/v1``); ``api_key`` is sent as a
    Bearer token. ``timeout_s`` applies when a call gives none; it bounds each
    phase (connect, send, wait for the reply), which for an unstreamed reply is
    the wait for the answer. The httpx client is thread-safe, so workers' threads
    may share one backend.
    """

    def __init__(
        self, url: str, model: str, api_key: str | None = None, timeout_s: float | None = 60.0
    ) -> None:
        self.url = url.rstrip("/") + "/chat/completions"
        self.timeout_s = timeout_s
        self._model = model
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._client = httpx.Client(headers=headers, timeout=timeout_s)

    @property
    def model(self) -> str:
        return self._model

    def close(self) -> None:
        self._client.close()

    def _messages(self, system: str, user: str, script: Script) -> list[dict[str, str]]:
        return [
            {"role": "system", "content": system},
            {"role": "user", "content": user_message(user, script)},
        ]

    def max_tokens(self, system: str, user: str, script: Script) -> int:
        """The prompt by ``estimate_tokens``, plus the completion cap sent as ``max_tokens``.

        The completion cannot exceed its cap (the server stops there), so only the
        prompt is an estimate, ~1.5x generous on this project's text.
        """
        messages = self._messages(system, user, script)
        prompt = sum(estimate_tokens(m["content"]) + _PER_MESSAGE for m in messages)
        return prompt + _PER_MESSAGE + _completion_bound(script)

    def _post(self, payload: dict[str, Any], timeout_s: float | None) -> Any:
        timeout = self.timeout_s if timeout_s is None else timeout_s
        try:
            response = self._client.post(self.url, json=payload, timeout=timeout)
        except httpx.TimeoutException as exc:
            raise TimeoutError(f"no reply from {self.url} within {timeout}s") from exc
        except httpx.HTTPError as exc:
            raise OpenAIBackendError(f"request to {self.url} failed: {exc!r}") from exc
        if response.status_code != 200:
            raise OpenAIBackendError(
                f"{self.url} answered HTTP {response.status_code}: {response.text[:300]}"
            )
        try:
            return response.json()
        except ValueError as exc:
            raise OpenAIBackendError(
                f"{self.url} answered non-JSON: {response.text[:200]}"
            ) from exc

    def choose(
        self, system: str, user: str, script: Script, timeout_s: float | None = None
    ) -> ChoiceResult:
        """One constrained request for every choice point; its reply checked against the script."""
        started = time.perf_counter()
        cap = _completion_bound(script)
        schema = {"name": SCHEMA_NAME, "strict": True, "schema": answer_schema(script)}
        payload = {
            "model": self._model,
            "messages": self._messages(system, user, script),
            "max_tokens": cap,
            "temperature": 0,
            "response_format": {"type": "json_schema", "json_schema": schema},
        }
        content, finish, prompt_tokens, completion_tokens = _reply(self._post(payload, timeout_s))
        if finish == "length":
            raise OpenAIBackendError(f"answer cut at max_tokens={cap}: {content[:200]!r}")
        picks = parse_answer(content, script)
        return ChoiceResult(picks, prompt_tokens, completion_tokens, time.perf_counter() - started)

    def generate(
        self, system: str, user: str, max_new_tokens: int, timeout_s: float | None = None
    ) -> tuple[str, int, int]:
        """Free text for the narrator: (text, prompt tokens, new tokens); callers validate it."""
        payload = {
            "model": self._model,
            "messages": [{"role": "system", "content": system}, {"role": "user", "content": user}],
            "max_tokens": max_new_tokens,
            "temperature": 0,
        }
        content, _, prompt_tokens, completion_tokens = _reply(self._post(payload, timeout_s))
        return content.strip(), prompt_tokens, completion_tokens
