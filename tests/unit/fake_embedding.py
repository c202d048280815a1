"""A deterministic stand-in for MiniLM in pure tests (the real model has its own test)."""

from __future__ import annotations

import hashlib
import math
import struct
from collections.abc import Sequence


def f32(x: float) -> float:
    """``x`` rounded to float32, as LanceDB's embedding columns store it."""
    return float(struct.unpack("f", struct.pack("f", x))[0])


def fake_embed(texts: Sequence[str]) -> list[list[float]]:
    """8-d unit vectors from SHA-256 of the text, exact in float32."""
    out = []
    for text in texts:
        vec = [b - 127.5 for b in hashlib.sha256(text.encode()).digest()[:8]]
        norm = math.sqrt(sum(x * x for x in vec))
        out.append([f32(x / norm) for x in vec])
    return out
