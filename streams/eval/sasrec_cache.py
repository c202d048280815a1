"""A trained SASRec kept on disk under the hash of everything that made it.

The key covers the model format, the configuration, the catalogue size, the
training windows, the memory tokens' inputs and the validation cases, so a
cached model is used only for the very data it was trained on; anything else
trains anew. Files are written to a temporary name and renamed, so a run cut
short never leaves a half-written model that a later run would load.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Sequence
from dataclasses import asdict
from pathlib import Path

import torch
from torch import Tensor

from streams.eval.sasrec import MemoryBatch, SASRec
from streams.eval.sasrec_train import TrainLog, Windows, train_sasrec

__all__ = ["FORMAT", "default_cache_dir", "trained_sasrec"]

# Bump when the model or its training changes what a cached file would hold.
FORMAT = "sasrec-2"


def default_cache_dir() -> Path:
    return Path.home() / ".cache" / "beliefstream" / "sasrec"


def data_hash(
    model: SASRec,
    windows: Windows,
    memory: MemoryBatch | None,
    validation: Sequence[object],
) -> str:
    """sha256 of the format, config, catalogue size, windows, memory and validation cases."""
    digest = hashlib.sha256()
    head = {"format": FORMAT, "config": asdict(model.cfg), "items": model.n_items,
            "memory": model.reads_memory}  # fmt: skip
    digest.update(json.dumps(head, sort_keys=True).encode())
    tensors: list[Tensor] = [windows.inputs, windows.targets]
    if memory is not None:
        tensors += [memory.keys, memory.strengths, memory.profiles]
    for tensor in tensors:
        digest.update(str(tuple(tensor.shape)).encode())
        digest.update(tensor.contiguous().numpy().tobytes())
    digest.update(json.dumps(validation, sort_keys=True, default=repr).encode())
    return digest.hexdigest()


def trained_sasrec(
    model: SASRec,
    windows: Windows,
    validate: Callable[[SASRec], float],
    validation: Sequence[object],
    cache_dir: Path | None,
    memory: MemoryBatch | None = None,
    on_epoch: Callable[[int, float, float], None] | None = None,
) -> tuple[TrainLog, bool]:
    """Load ``model``'s weights from the cache, or train and store them; True when cached."""
    if cache_dir is None:
        return train_sasrec(model, windows, validate, memory, on_epoch), False
    path = cache_dir / f"{data_hash(model, windows, memory, validation)}.pt"
    if path.is_file():
        saved = torch.load(path, weights_only=True)
        model.load_state_dict(saved["state"])
        model.eval()
        return TrainLog(**saved["log"]), True
    log = train_sasrec(model, windows, validate, memory, on_epoch)
    cache_dir.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(f".{os.getpid()}.part")
    torch.save({"state": model.state_dict(), "log": asdict(log)}, partial)
    partial.replace(path)
    return log, False
