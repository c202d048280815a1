"""The outputs: PNGs that decode to what was drawn, the plots, the markdown table."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from streams.eval.ablation import ABLATIONS
from streams.eval.plots import bar_chart, nice_max, scatter_chart
from streams.eval.png import Canvas, png_bytes
from streams.eval.report import markdown


def decode_png(data: bytes) -> np.ndarray[Any, Any]:
    """Just enough of a PNG reader for 8-bit RGB with filter 0 rows (what png_bytes writes)."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, chunks = 8, {}
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind, body = data[pos + 4 : pos + 8], data[pos + 8 : pos + 8 + length]
        (crc,) = struct.unpack(">I", data[pos + 8 + length : pos + 12 + length])
        assert crc == zlib.crc32(kind + body)
        chunks[kind] = body
        pos += 12 + length
    width, height, depth, color = struct.unpack(">IIBB", chunks[b"IHDR"][:10])
    assert (depth, color) == (8, 2) and b"IEND" in chunks
    raw = np.frombuffer(zlib.decompress(chunks[b"IDAT"]), dtype=np.uint8)
    rows = raw.reshape(height, 1 + width * 3)
    assert not rows[:, 0].any()
    return rows[:, 1:].reshape(height, width, 3)


def test_png_round_trips_the_pixels() -> None:
    pixels = np.random.default_rng(0).integers(0, 256, size=(7, 5, 3), dtype=np.uint8)
    assert (decode_png(png_bytes(pixels)) == pixels).all()
    with pytest.raises(ValueError, match="uint8"):
        png_bytes(pixels.astype(np.float32))


def test_canvas_draws_clipped_shapes_and_text() -> None:
    c = Canvas(40, 20)
    c.rect(-5, -5, 4, 3, (255, 0, 0))
    assert (c.pixels[:3, :4] == (255, 0, 0)).all() and (c.pixels[3:, 4:] == 255).all()
    c.text(10, 5, "A1", (0, 0, 255), scale=1)
    blue = (c.pixels == (0, 0, 255)).all(axis=2)
    assert blue[5:12, 10:22].sum() > 10 and not blue[:, :10].any()
    assert Canvas.text_width("abc", 2) == 36


def test_nice_max_rounds_up() -> None:
    assert [nice_max(v) for v in (0.0, 0.013, 0.2, 0.21, 3.0, 740.0)] == [
        1.0, 0.02, 0.2, 0.25, 5.0, 1000.0,
    ]  # fmt: skip


def test_plots_are_valid_pngs(tmp_path: Path) -> None:
    bar_chart(tmp_path / "bars.png", "NDCG@10", ["a", "tiered_rules"], [0.01, 0.2], [0.0, 0.05])
    scatter_chart(tmp_path / "dots.png", "vs ops", [("a", 0.0, 0.1), ("b", 900.0, 0.3)], "ops")
    for name in ("bars.png", "dots.png"):
        image = decode_png((tmp_path / name).read_bytes())
        assert image.shape[0] > 100 and (image != 255).any()


def test_markdown_lists_every_variant_and_the_cold_figures() -> None:
    entry = {
        "hr_at_1": 0.1,
        "hr_at_10": 0.3,
        "hr_at_10_se": 0.05,
        "ndcg_at_10": 0.2,
        "mean_rank_pct": 0.25,
        "ops": 12,
        "llm_calls": 3,
        "llm_tokens": 900,
        "wall_s": 4.0,
    }
    result = {
        "dataset": "ml-100k", "limit": 100, "wall_s": 60.0,
        "split": {"method": "leave_last_out", "train_events": 90, "test_events": 10,
                  "users_evaluated": 5, "candidates": 50},
        "variants": {"flat": entry, "tiered_llm": entry},
        "cold": {"variant": "flat", "method": "content_scorer", "targets": 4, "realtime": 0.25,
                 "rebuild_only": 0.0},
        "scorer": {"formula": "score = ...", "profile_weight": 1.0, "half_life_events": 5.0,
                   "weights": {"content": 0.0, "collab": 1.0, "popularity": 0.5},
                   "codebook_pool": {"k": 100}},
    }  # fmt: skip
    ablations = {k: {"ndcg_at_10": 0.125} for k in ABLATIONS}
    result["variants"]["flat"] = {**entry, "details": {"ablations": ablations}}
    text = markdown(result)
    assert "| flat | 0.1000 | 0.3000 ± 0.0500 | 0.2000 | 0.250 | 12 | 3 | 900 | 4.0 |" in text
    assert "| tiered_llm |" in text and "first 100 events" in text
    assert "Split leave_last_out: 90 events replayed" in text
    assert "real-time 0.2500, rebuild-only 0.0000" in text
    assert "| flat | 0.2000 | 0.1250 | 0.1250 | 0.1250 | 0.1250 |" in text  # the ablations
    assert "| tiered_llm | 0.2000 | 0.1250" not in text  # none measured for it
