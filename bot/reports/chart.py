"""The quarterly update's small chart: the quarter's three months side by side (runs by outcome, hypotheses
refuted, action items opened).

As for the retrospective's chart, matplotlib is imported inside ``draw`` and only its object API with the
Agg canvas is used (no pyplot global state, safe from several threads).
"""

from __future__ import annotations

import io
from dataclasses import dataclass

from bot.reports.summary import MonthTrend, Summary

WIDTH_INCHES, HEIGHT_INCHES, DPI = 7.0, 3.4, 110
BARS = (  # (field, label, colour), stacked bottom to top
    ("completed", "completed", "#2ca02c"),
    ("aborted", "aborted", "#7b3294"),
    ("failed", "failed", "#d62728"),
)
LINES = (("refuted", "hypotheses refuted", "#e6862e"), ("actions_opened", "action items opened", "#1f6fb2"))


@dataclass(frozen=True)
class TrendChart:
    png: bytes
    months: tuple[str, ...]
    drawn: dict[str, tuple[int, ...]]  # each series, as drawn


def draw(summary: Summary) -> TrendChart:
    """Draw the trend of a quarterly summary as PNG bytes (ValueError for a monthly one: it has no trend)."""
    if not summary.trend:
        raise ValueError("only a quarterly summary has a trend to draw")
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    months = tuple(month.period for month in summary.trend)
    drawn = {name: _series(summary.trend, name) for name, _, _ in BARS + LINES}
    figure = Figure(figsize=(WIDTH_INCHES, HEIGHT_INCHES), dpi=DPI, layout="constrained")
    axes = figure.add_subplot()
    positions = list(range(len(months)))
    bottom = [0] * len(months)
    for name, label, colour in BARS:
        axes.bar(positions, drawn[name], bottom=bottom, width=0.55, label=label, color=colour)
        bottom = [below + value for below, value in zip(bottom, drawn[name], strict=True)]
    for name, label, colour in LINES:
        axes.plot(positions, drawn[name], marker="o", label=label, color=colour, linewidth=2)
    axes.set_xticks(positions, months)
    axes.set_ylabel("count")
    axes.set_ylim(bottom=0)
    axes.grid(axis="y", alpha=0.3)
    axes.legend(loc="upper left", fontsize=8, ncols=2, frameon=False)
    figure.suptitle(f"Chaos experiments, {summary.period.title}", fontsize=11, fontweight="bold")
    buffer = io.BytesIO()
    FigureCanvasAgg(figure)  # attaches the Agg canvas: savefig needs no display
    figure.savefig(buffer, format="png")
    return TrendChart(png=buffer.getvalue(), months=months, drawn=drawn)


def _series(trend: list[MonthTrend], name: str) -> tuple[int, ...]:
    return tuple(int(getattr(month, name)) for month in trend)
