"""The two evaluation plots, drawn on the numpy ``Canvas`` (matplotlib is not a dependency).

* ``ndcg_at_10.png``: one bar per variant, its NDCG@10 written above it (the
  standard errors are in the table: few users are evaluated, small gaps are noise);
* ``quality_vs_ops.png``: NDCG@10 against lifecycle operations run, one
  labelled point per variant (variants without a lifecycle sit at 0 ops).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

from streams.eval.png import Canvas, Color

__all__ = ["bar_chart", "nice_max", "scatter_chart"]

_PALETTE: tuple[Color, ...] = (
    (78, 121, 167), (242, 142, 43), (225, 87, 89), (118, 183, 178),
    (89, 161, 79), (237, 201, 72), (176, 122, 161), (156, 117, 95),
)  # fmt: skip
_GREY: Color = (200, 200, 200)
_INK: Color = (30, 30, 30)


def nice_max(value: float) -> float:
    """A round axis maximum at or above ``value`` (1, 2, 2.5 or 5 times a power of ten)."""
    if value <= 0 or not math.isfinite(value):
        return 1.0
    power = 10.0 ** math.floor(math.log10(value))
    for step in (1.0, 2.0, 2.5, 5.0, 10.0):
        if value <= step * power:
            return step * power
    return 10.0 * power


def _tick(value: float) -> str:
    return f"{value:,.0f}" if value >= 1000 else f"{value:.3g}"


def _frame(c: Canvas, box: tuple[int, int, int, int], ymax: float, title: str) -> None:
    left, top, right, bottom = box
    c.text(c.width / 2, 16, title, _INK, 2, "center")
    for k in range(6):
        y = bottom - (bottom - top) * k / 5
        c.line(left, y, right, y, _GREY)
        c.text(left - 8, y - 7, _tick(ymax * k / 5), _INK, 2, "right")
    c.line(left, top, left, bottom, _INK, 2)
    c.line(left, bottom, right, bottom, _INK, 2)


def bar_chart(
    path: Path,
    title: str,
    labels: Sequence[str],
    values: Sequence[float],
    errors: Sequence[float] | None = None,
) -> None:
    """Labelled bars (with optional +/- error whiskers) from 0 to a round maximum."""
    c = Canvas(max(900, 170 * len(labels) + 140), 560)
    box = (110, 60, c.width - 30, c.height - 70)
    top_value = max([v + (e or 0.0) for v, e in zip(values, errors or [0.0] * len(values),
                                                    strict=True)] + [0.0])  # fmt: skip
    ymax = nice_max(top_value * 1.1)
    _frame(c, box, ymax, title)
    left, top, right, bottom = box
    slot = (right - left) / max(len(labels), 1)
    for n, (label, value) in enumerate(zip(labels, values, strict=True)):
        x0 = left + n * slot + slot * 0.15
        x1 = left + (n + 1) * slot - slot * 0.15
        y = bottom - (bottom - top) * value / ymax
        c.rect(x0, y, x1, bottom, _PALETTE[n % len(_PALETTE)])
        mid = (x0 + x1) / 2
        if errors is not None:
            err = (bottom - top) * errors[n] / ymax
            c.line(mid, y - err, mid, min(y + err, bottom), _INK, 2)
            c.line(mid - 8, y - err, mid + 8, y - err, _INK, 2)
        c.text(mid, y - 34 if errors is None else y - 34 - (bottom - top) * errors[n] / ymax,
               f"{value:.3f}", _INK, 2, "center")  # fmt: skip
        c.text(mid, bottom + 12, label, _INK, 1 if Canvas.text_width(label) > slot else 2,
               "center")  # fmt: skip
    c.save(path)


def scatter_chart(
    path: Path,
    title: str,
    points: Sequence[tuple[str, float, float]],
    xlabel: str,
) -> None:
    """Labelled points (label, x, y) on axes from 0 to round maxima."""
    c = Canvas(1000, 600)
    box = (110, 60, c.width - 60, c.height - 80)
    left, top, right, bottom = box
    ymax = nice_max(max([y for _, _, y in points] + [0.0]) * 1.15)
    xmax = nice_max(max([x for _, x, _ in points] + [0.0]) * 1.1)
    _frame(c, box, ymax, title)
    for k in range(6):
        x = left + (right - left) * k / 5
        c.line(x, bottom, x, bottom + 6, _INK, 2)
        c.text(x, bottom + 12, _tick(xmax * k / 5), _INK, 2, "center")
    c.text((left + right) / 2, bottom + 44, xlabel, _INK, 2, "center")
    for n, (label, xv, yv) in enumerate(points):
        x = left + (right - left) * xv / xmax
        y = bottom - (bottom - top) * yv / ymax
        color = _PALETTE[n % len(_PALETTE)]
        c.dot(x, y, 7, color)
        c.text(x + 12, y - 7 + 16 * (n % 2) - 8, label, color, 2)
    c.save(path)
