"""The two evaluation plots, drawn with matplotlib's non-interactive Agg renderer.

* ``ndcg_at_10.png``: one bar per variant, its NDCG@10 written above it (the
  standard errors are in the table: few users are evaluated, small gaps are noise);
* ``quality_vs_ops.png``: NDCG@10 against lifecycle operations run, one
  labelled point per variant (variants without a lifecycle sit at 0 ops).

Each figure is a ``Figure`` bound to its own ``FigureCanvasAgg``, not one made
through ``pyplot``: no display is needed, the process-wide backend is left
alone, and no figure is kept in pyplot's registry, so nothing stays open
after the file is written.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter

__all__ = ["bar_chart", "nice_max", "scatter_chart"]

_PALETTE: tuple[str, ...] = (
    "#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f", "#edc948", "#b07aa1", "#9c755f",
)  # fmt: skip
_GREY = "#c8c8c8"
_INK = "#1e1e1e"
_DPI = 100


def nice_max(value: float) -> float:
    """A round axis maximum at or above ``value`` (1, 2, 2.5 or 5 times a power of ten)."""
    if value <= 0 or not math.isfinite(value):
        return 1.0
    power = 10.0 ** math.floor(math.log10(value))
    for step in (1.0, 2.0, 2.5, 5.0, 10.0):
        if value <= step * power:
            return step * power
    return 10.0 * power


def _tick(value: float, _pos: int | None = None) -> str:
    return f"{value:,.0f}" if value >= 1000 else f"{value:.3g}"


def _figure(width_px: int, height_px: int, title: str) -> tuple[Figure, Axes]:
    """A white figure of that many pixels, rendered by Agg, with one titled axes."""
    fig = Figure(figsize=(width_px / _DPI, height_px / _DPI), dpi=_DPI, layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    ax.set_title(title, color=_INK)
    ax.spines[["top", "right"]].set_visible(False)
    ax.grid(axis="y", color=_GREY, linewidth=0.8)
    ax.set_axisbelow(True)
    return fig, ax


def _y_axis(ax: Axes, ymax: float) -> None:
    """From 0 to ``ymax`` in five equal steps."""
    ax.set_ylim(0.0, ymax)
    ax.set_yticks([ymax * k / 5 for k in range(6)])
    ax.yaxis.set_major_formatter(FuncFormatter(_tick))


def bar_chart(
    path: Path,
    title: str,
    labels: Sequence[str],
    values: Sequence[float],
    errors: Sequence[float] | None = None,
) -> None:
    """Labelled bars (with optional +/- error whiskers) from 0 to a round maximum."""
    errs = list(errors) if errors is not None else [0.0] * len(values)
    tops = [v + e for v, e in zip(values, errs, strict=True)]
    ymax = nice_max(max([*tops, 0.0]) * 1.1)
    fig, ax = _figure(max(900, 170 * len(labels) + 140), 560, title)
    xs = list(range(len(labels)))
    colors = [_PALETTE[n % len(_PALETTE)] for n in xs]
    ax.bar(xs, values, width=0.7, color=colors,
           yerr=errs if errors is not None else None, ecolor=_INK, capsize=8)  # fmt: skip
    for x, value, top in zip(xs, values, tops, strict=True):
        ax.annotate(f"{value:.3f}", (x, top), xytext=(0, 4), textcoords="offset points",
                    ha="center", va="bottom", color=_INK)  # fmt: skip
    ax.set_xticks(xs, list(labels), rotation=20 if max(map(len, labels), default=0) > 18 else 0)
    ax.set_xlim(-0.6, len(labels) - 0.4)
    _y_axis(ax, ymax)
    fig.savefig(path)


def scatter_chart(
    path: Path,
    title: str,
    points: Sequence[tuple[str, float, float]],
    xlabel: str,
) -> None:
    """Labelled points (label, x, y) on axes from 0 to round maxima."""
    ymax = nice_max(max([y for _, _, y in points] + [0.0]) * 1.15)
    xmax = nice_max(max([x for _, x, _ in points] + [0.0]) * 1.1)
    fig, ax = _figure(1000, 600, title)
    for n, (label, xv, yv) in enumerate(points):
        color = _PALETTE[n % len(_PALETTE)]
        ax.scatter([xv], [yv], s=150, color=color, zorder=3, clip_on=False)
        # Neighbours' labels alternate above and below their points so close ones stay legible.
        ax.annotate(label, (xv, yv), xytext=(10, 6 if n % 2 == 0 else -14),
                    textcoords="offset points", color=color)  # fmt: skip
    ax.set_xlim(0.0, xmax)
    ax.set_xticks([xmax * k / 5 for k in range(6)])
    ax.xaxis.set_major_formatter(FuncFormatter(_tick))
    ax.set_xlabel(xlabel, color=_INK)
    _y_axis(ax, ymax)
    fig.savefig(path)
