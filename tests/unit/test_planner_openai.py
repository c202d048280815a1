"""The OpenAI-compatible backend: script -> schema, reply parsing, every rejection, over real HTTP.

A tiny stdlib HTTP server in a thread answers each test as told (computed from
the request's own schema on the happy path), so requests, headers and timeouts
cross a real socket. llm-serve's schema -> script conversion is pure and checked
here too: whatever it picks must parse back to the same picks.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from planner.backend import Choice, Script
from planner.budget import Budget
from planner.llm.openai import (
    SCHEMA_NAME,
    OpenAIBackend,
    OpenAIBackendError,
    answer_schema,
    choice_keys,
    estimate_tokens,
    parse_answer,
    render_template,
)
from planner.llm.serve import SchemaError, answer_text, script_for_schema
from planner.llm_policy import LLMPolicy
from tests.unit.test_planner_llm_policy import user

MENU = Choice((" no", " now", " soon"))
SCRIPT: Script = ["user 1 (2 beliefs)\nextraction, 3 new events:", MENU, "\nforgetting:", MENU]


def completion(content: str | None, finish: str = "stop", usage: Any = None) -> dict[str, Any]:
    return {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": content},
                     "finish_reason": finish}],
        "usage": {"prompt_tokens": 11, "completion_tokens": 7} if usage is None else usage,
    }  # fmt: skip


def last_options(request: dict[str, Any]) -> tuple[int, Any]:
    """A well-behaved server: each property answered with the last value of its enum."""
    props = request["response_format"]["json_schema"]["schema"]["properties"]
    return 200, completion(json.dumps({k: v["enum"][-1] for k, v in props.items()}))


@dataclass
class Server:
    url: str
    reply: Callable[[dict[str, Any]], tuple[int, Any]] = last_options
    delay_s: float = 0.0
    seen: list[tuple[dict[str, str], dict[str, Any]]] = field(default_factory=list)


@pytest.fixture
def server() -> Iterator[Server]:
    state = Server("")

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            request = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            state.seen.append((dict(self.headers), request))
            time.sleep(state.delay_s)
            status, body = state.reply(request)
            data = body if isinstance(body, bytes) else json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args: Any) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True).start()
    state.url = f"http://127.0.0.1:{httpd.server_port}/v1/"
    yield state
    httpd.shutdown()
    httpd.server_close()


def test_keys_carry_the_literal_before_each_choice_sanitized_and_unique() -> None:
    script: Script = [MENU, 'say "hi"\\\n\tnow:', MENU, "x" * 200 + " tail:", MENU, "same:", MENU]
    keys = choice_keys([*script, "same:", MENU])
    assert keys[:3] == ["c0:", "c1: say 'hi'/ now:", "c2: ..." + ("x" * 200 + " tail:")[-77:]]
    assert keys[3] == "c3: same:" and keys[4] == "c4: same:" and len(set(keys)) == 5
    assert all(len(k) <= 85 for k in keys)


def test_schema_is_strict_flat_and_ordered() -> None:
    schema = answer_schema(SCRIPT)
    keys = ["c0: user 1 (2 beliefs) extraction, 3 new events:", "c1: forgetting:"]
    assert schema == {
        "type": "object",
        "properties": {k: {"type": "string", "enum": [" no", " now", " soon"]} for k in keys},
        "required": keys,
        "additionalProperties": False,
    }


def test_the_template_keeps_the_script_text_and_lists_each_choice() -> None:
    assert render_template(SCRIPT) == (
        'user 1 (2 beliefs)\nextraction, 3 new events: [c0: " no" | " now" | " soon"]'
        '\nforgetting: [c1: " no" | " now" | " soon"]'
    )


def test_a_matching_reply_maps_to_option_indexes() -> None:
    keys = choice_keys(SCRIPT)
    assert parse_answer(json.dumps({keys[1]: " no", keys[0]: " soon"}), SCRIPT) == (2, 0)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{not json", "not JSON"),
        ('[" no", " now"]', "not a JSON object"),
        ('{"c0: user 1 (2 beliefs) extraction, 3 new events:": " no"}', "lacks key"),
        ('{"c1: forgetting:": " no", "c0: user 1 (2 beliefs) extraction, 3 new events:": " no",'
         ' "c2: extra": " no"}', "keys the schema lacks"),
        ('{"c1: forgetting:": "no", "c0: user 1 (2 beliefs) extraction, 3 new events:": " no"}',
         "not one of"),
        ('{"c1: forgetting:": 1, "c0: user 1 (2 beliefs) extraction, 3 new events:": " no"}',
         "not one of"),
    ],
)  # fmt: skip
def test_a_reply_off_the_schema_is_rejected(content: str, message: str) -> None:
    with pytest.raises(OpenAIBackendError, match=message):
        parse_answer(content, SCRIPT)


def test_token_estimate_counts_digits_and_bytes_one_each() -> None:
    assert estimate_tokens("") == 0
    assert estimate_tokens("1700000000") == 10
    assert estimate_tokens("café") == 1 + 2  # "caf" then é's two UTF-8 bytes
    assert estimate_tokens(" extraction, now") == 4 + 1 + 1


option_text = st.text(st.characters(exclude_categories=["Cs"]), min_size=1, max_size=8)
choices = st.lists(option_text, min_size=1, max_size=4, unique=True).map(lambda o: Choice(tuple(o)))


@given(st.lists(st.tuples(st.text(max_size=30), choices), min_size=0, max_size=5), st.data())
def test_whatever_llm_serve_picks_parses_back_to_the_same_picks(
    parts: list[tuple[str, Choice]], data: st.DataObject
) -> None:
    script: Script = [p for text, choice in parts for p in (text, choice)]
    served = script_for_schema(answer_schema(script))
    served_choices = [p for p in served if isinstance(p, Choice)]
    for choice in served_choices:  # prefix-free, as the local backend requires
        assert not any(a != b and b.startswith(a) for a in choice.options for b in choice.options)
    picks = tuple(data.draw(st.integers(0, len(c.options) - 1)) for c in served_choices)
    assert parse_answer(answer_text(served, picks), script) == picks


@pytest.mark.parametrize(
    "schema",
    [
        {"type": "array", "items": {"type": "string"}},
        {"type": "object", "properties": {"a": {"type": "object", "properties": {}}}},
        {"type": "object", "properties": {"a": {"type": "string"}}},
        {"type": "object", "properties": {"a": {"type": "integer", "enum": [1, 2]}}},
        {"type": "object", "properties": {"a": {"enum": ["x", "x"]}}},
        {"type": "object", "properties": {"a": {"enum": []}}},
        {"type": "object", "properties": {"a": {"enum": ["x"], "pattern": "x"}}},
        {"type": "object", "properties": {}, "$defs": {}},
        {"type": "object", "properties": {"a": {"enum": ["x"]}}, "required": ["b"]},
    ],
)
def test_llm_serve_refuses_schemas_it_cannot_force(schema: dict[str, Any]) -> None:
    with pytest.raises(SchemaError):
        script_for_schema(schema)


def test_choose_sends_one_strict_request_and_reads_picks_and_usage(server: Server) -> None:
    backend = OpenAIBackend(server.url, "tiny", api_key="s3cret")
    result = backend.choose("sys", "plan", SCRIPT, timeout_s=5)
    assert result.picks == (2, 2) and result.prompt_tokens == 11 and result.completion_tokens == 7
    headers, request = server.seen[0]
    assert headers["Authorization"] == "Bearer s3cret"
    assert request["model"] == "tiny" and request["temperature"] == 0
    assert request["messages"][0] == {"role": "system", "content": "sys"}
    assert request["messages"][1]["content"].startswith("plan\n\n")
    assert render_template(SCRIPT) in request["messages"][1]["content"]
    fmt = request["response_format"]
    assert fmt["type"] == "json_schema" and fmt["json_schema"]["strict"] is True
    assert fmt["json_schema"] == {"name": SCHEMA_NAME, "strict": True,
                                  "schema": answer_schema(SCRIPT)}  # fmt: skip
    # The charge covers the completion cap sent, plus the estimated prompt.
    assert backend.max_tokens("sys", "plan", SCRIPT) > request["max_tokens"] > 0


def test_generate_sends_plain_chat_and_needs_no_key(server: Server) -> None:
    server.reply = lambda request: (200, completion("  Likes comedy. \n"))
    text, prompt, new = OpenAIBackend(server.url, "tiny").generate("sys", "describe", 40)
    assert (text, prompt, new) == ("Likes comedy.", 11, 7)
    headers, request = server.seen[0]
    assert "Authorization" not in headers and "response_format" not in request
    assert request["max_tokens"] == 40 and [m["role"] for m in request["messages"]] == [
        "system",
        "user",
    ]


def good(request: dict[str, Any]) -> str:
    return str(last_options(request)[1]["choices"][0]["message"]["content"])


@pytest.mark.parametrize(
    ("reply", "message"),
    [
        (lambda r: (500, {"error": "boom"}), "HTTP 500"),
        (lambda r: (401, {"detail": "wrong key"}), "HTTP 401.*wrong key"),
        (lambda r: (200, b"<html>"), "non-JSON"),
        (lambda r: (200, {"object": "error"}), "not a chat completion"),
        (lambda r: (200, {**completion(good(r)), "choices": []}), "not a chat completion"),
        (lambda r: (200, {**completion(good(r)), "usage": None}), "not a chat completion"),
        (lambda r: (200, completion(good(r), usage={"prompt_tokens": "x",
                                                     "completion_tokens": 1})), "usage"),
        (lambda r: (200, completion(good(r)[:-5], finish="length")), "cut at max_tokens"),
        (lambda r: (200, {**completion(None), "choices": [{"message": {"refusal": "no"}}]}),
         "refusal: 'no'"),
        (lambda r: (200, completion('{"c0": " no"}')), "keys the schema lacks"),
    ],
)  # fmt: skip
def test_every_bad_reply_raises_a_clear_error(
    server: Server, reply: Callable[[dict[str, Any]], tuple[int, Any]], message: str
) -> None:
    server.reply = reply
    with pytest.raises(OpenAIBackendError, match=message):
        OpenAIBackend(server.url, "tiny").choose("sys", "plan", SCRIPT)


def test_a_slow_server_raises_timeout_error(server: Server) -> None:
    server.delay_s = 1.0
    backend = OpenAIBackend(server.url, "tiny", timeout_s=0.1)
    with pytest.raises(TimeoutError):
        backend.choose("sys", "plan", SCRIPT)
    with pytest.raises(TimeoutError):
        backend.generate("sys", "describe", 10, timeout_s=0.1)


def test_an_unreachable_server_is_an_error_not_a_hang(server: Server) -> None:
    backend = OpenAIBackend("http://127.0.0.1:9/v1", "tiny", timeout_s=5)
    with pytest.raises(OpenAIBackendError, match="failed"):
        backend.choose("sys", "plan", SCRIPT)


def test_the_policy_uses_the_picks_and_falls_back_on_each_failure(server: Server) -> None:
    backend = OpenAIBackend(server.url, "tiny", timeout_s=5)
    policy = LLMPolicy(backend, Budget(100, 10**6))
    plans = policy.decide([user(1)])
    assert plans[0].policy == "llm" and plans[0].model == "tiny"
    assert {o.reason.split("'")[1] for o in plans[0].ops} == {"tomorrow"}  # the last option
    server.reply = lambda r: (503, {"detail": "overloaded"})
    assert policy.decide([user(2)])[0].fallback == "error"
    server.reply, server.delay_s, backend.timeout_s = last_options, 1.0, 0.1
    policy.timeout_s = None  # the backend's own timeout applies
    assert policy.decide([user(3)])[0].fallback == "timeout"
    assert policy.stats.fallbacks == {"error": 1, "timeout": 1} and policy.stats.llm_plans == 1
