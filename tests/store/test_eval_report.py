"""The outputs: the plots (real PNGs with the bars and points drawn), the markdown table."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import numpy.typing as npt
from PIL import Image

from streams.eval.ablation import ABLATIONS
from streams.eval.plots import bar_chart, nice_max, scatter_chart
from streams.eval.report import markdown


def read_png(path: Path) -> npt.NDArray[np.uint8]:
    """The file's pixels as (height, width, 3) RGB, after checking it is a PNG Pillow decodes."""
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with Image.open(path) as image:
        assert image.format == "PNG"
        image.verify()  # checks the chunks' CRCs; the image must be reopened to read pixels
    with Image.open(path) as image:
        return np.asarray(image.convert("RGB"))


def coloured(pixels: npt.NDArray[np.uint8]) -> npt.NDArray[np.bool_]:
    """Pixels of a saturated colour: the bars and dots, not the white, black or grey frame."""
    channels = pixels.astype(np.int16)
    return (channels.max(axis=2) - channels.min(axis=2)) > 60


def test_nice_max_rounds_up() -> None:
    assert [nice_max(v) for v in (0.0, 0.013, 0.2, 0.21, 3.0, 740.0)] == [
        1.0, 0.02, 0.2, 0.25, 5.0, 1000.0,
    ]  # fmt: skip


def test_plots_are_valid_pngs(tmp_path: Path) -> None:
    bar_chart(tmp_path / "bars.png", "NDCG@10", ["a", "tiered_rules"], [0.01, 0.2], [0.0, 0.05])
    scatter_chart(tmp_path / "dots.png", "vs ops", [("a", 0.0, 0.1), ("b", 900.0, 0.3)], "ops")
    for name, min_area in (("bars.png", 20_000), ("dots.png", 300)):
        pixels = read_png(tmp_path / name)
        height, width, _ = pixels.shape
        assert width >= 600 and height >= 400
        assert (pixels != 255).any()  # not blank
        # The data is drawn: the bars' / dots' colours cover an area, one colour per series.
        mask = coloured(pixels)
        assert mask.sum() > min_area
        assert len(np.unique(pixels[mask], axis=0)) >= 2


def test_plots_without_data_draw_no_bars_or_dots(tmp_path: Path) -> None:
    """The check above tells data from an empty frame: an empty chart has no coloured area."""
    bar_chart(tmp_path / "bars.png", "NDCG@10", [], [])
    scatter_chart(tmp_path / "dots.png", "vs ops", [], "ops")
    for name in ("bars.png", "dots.png"):
        pixels = read_png(tmp_path / name)
        assert (pixels != 255).any() and coloured(pixels).sum() < 50


def test_bar_chart_grows_with_the_variants(tmp_path: Path) -> None:
    labels = [f"variant_{n}" for n in range(9)]
    bar_chart(tmp_path / "few.png", "t", labels[:2], [0.1, 0.2])
    bar_chart(tmp_path / "many.png", "t", labels, [0.1] * 9, [0.01] * 9)
    assert read_png(tmp_path / "many.png").shape[1] > read_png(tmp_path / "few.png").shape[1]


def test_markdown_lists_every_variant_and_the_cold_figures() -> None:
    entry = {
        "hr_at_1": 0.1,
        "hr_at_10": 0.3,
        "hr_at_10_se": 0.05,
        "ndcg_at_10": 0.2,
        "ndcg_at_10_ci95": [0.15, 0.26],
        "mean_rank_pct": 0.25,
        "ops": 12,
        "llm_calls": 3,
        "llm_tokens": 900,
        "wall_s": 4.0,
        "infer_ms_per_1k_users": 250.0,
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
    row = (
        "| flat | 0.1000 | 0.3000 ± 0.0500 | 0.2000 [0.1500, 0.2600] | 0.250 | 12 | 3 | 900 | 4.0 "
        "| 250 |"
    )
    assert row in text
    assert "| tiered_llm |" in text and "first 100 events" in text
    assert "Split leave_last_out: 90 events replayed" in text
    assert "real-time 0.2500, rebuild-only 0.0000" in text
    assert "| flat | 0.2000 | 0.1250 | 0.1250 | 0.1250 | 0.1250 |" in text  # the ablations
    assert "| tiered_llm | 0.2000 | 0.1250" not in text  # none measured for it
    assert "minus" not in text  # no comparisons in this result
    assert "per belief family" not in text
    family = {"chunks": 7, "without": {"ndcg_at_10": 0.19}, "alone": {"ndcg_at_10": 0.01}}
    result["variants"]["tiered_llm"] = {
        **entry, "details": {"ablations_by_belief_family": {"genre": family}}
    }  # fmt: skip
    assert "| tiered_llm | genre | 7 | 0.2000 | 0.1900 | 0.0100 |" in markdown(result)
    result["comparisons"] = {
        "baseline": "ease_recent", "method": "paired bootstrap",
        "variants": {"flat": {"difference": 0.01, "ci95": [-0.002, 0.02],
                              "verdict": "within noise"}},
    }  # fmt: skip
    assert "| flat | +0.0100 | [-0.0020, +0.0200] | within noise |" in markdown(result)
    result["comparisons"]["claims"] = {
        "flat vs recent": {"difference": -0.03, "ci95": [-0.05, -0.01], "verdict": "below"}
    }
    assert "| flat vs recent | -0.0300 | [-0.0500, -0.0100] | below |" in markdown(result)
