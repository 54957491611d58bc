"""The retrospective's chart: each stop condition's samples over time against its threshold, the fault
window shaded, and the moments that matter (start, breach, abort or revert, recovered) marked.

matplotlib is imported inside ``draw``, which the server calls through ``bot.chart_process`` (in a helper
process: tens of MB the server never holds). Only its object API with the Agg canvas is used: no pyplot global
state, so ``draw`` is also safe to call from several threads.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from bot.retro.models import ConditionReport, Ending, Retrospective

if TYPE_CHECKING:
    from matplotlib.axes import Axes

DAY = 86400.0
WIDTH_INCHES, ROW_INCHES, DPI = 10.0, 2.6, 110
SAMPLE_COLOUR, FAILING_COLOUR, THRESHOLD_COLOUR, FAULT_COLOUR = "#1f6fb2", "#d62728", "#e6862e", "#f4c7c3"
MARKS = {  # timeline kind -> (label, colour, line style)
    "injected": ("fault injected", "#2ca02c", "-"),
    "breach": ("breach", "#d62728", "--"),
    "aborted": ("aborted", "#7b3294", "-"),
    "reverted": ("reverted", "#7b3294", "-"),
    "recovered": ("recovered", "#17becf", "-."),
}
ABORTS = (Ending.ABORTED, Ending.STOP_CONDITION, Ending.CONTROLLER_LOST, Ending.SYSTEM_ABORT)


@dataclass(frozen=True)
class Series:
    """What was drawn for one stop condition: the sampled moments and values (probe errors have no value)."""

    condition: str
    times: tuple[datetime, ...]
    values: tuple[float, ...]


@dataclass(frozen=True)
class Chart:
    png: bytes
    width: int
    height: int
    series: tuple[Series, ...]
    marks: dict[str, datetime]


def draw(retro: Retrospective) -> Chart:
    """Draw the chart as PNG bytes, with the series and marks it drew."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    zone = ZoneInfo(retro.zone)
    rows = max(1, len(retro.conditions))
    figure = Figure(figsize=(WIDTH_INCHES, ROW_INCHES * rows + 1.3), dpi=DPI, layout="constrained")
    axes_list = figure.subplots(rows, 1, sharex=True, squeeze=False)[:, 0]
    marks = _marks(retro)
    series = []
    for axes, condition in zip(axes_list, retro.conditions, strict=False):
        series.append(_plot_condition(axes, condition))
    if not retro.conditions:
        axes_list[0].text(
            0.5,
            0.5,
            "No stop conditions: nothing was measured",
            ha="center",
            va="center",
            transform=axes_list[0].transAxes,
            color="#555555",
        )
        axes_list[0].set_yticks([])
    for axes in axes_list:
        _decorate(axes, retro, marks, zone)
    figure.suptitle(_title(retro), fontsize=12, fontweight="bold")
    legend: dict[str, Any] = {}  # label -> handle, first one wins: each threshold once, shared marks once
    for axes in axes_list:
        for handle, label in zip(*axes.get_legend_handles_labels(), strict=True):
            legend.setdefault(label, handle)
    handles, labels = list(legend.values()), list(legend)
    if handles:
        figure.legend(handles, labels, loc="outside lower center", ncol=min(len(labels), 5), fontsize=8, frameon=False)
    axes_list[-1].set_xlabel(f"time ({_zone_name(retro, zone)})")
    canvas = FigureCanvasAgg(figure)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    width, height = (int(v) for v in canvas.get_width_height())
    return Chart(buffer.getvalue(), width, height, tuple(series), marks)


def _plot_condition(axes: Axes, condition: ConditionReport) -> Series:
    import numpy as np  # matplotlib's own dependency, loaded with it

    measured = [p for p in condition.points if p.value is not None]
    times = [_days(p.at) for p in measured]
    values = [float(p.value) for p in measured if p.value is not None]
    unit = f" ({condition.unit})" if condition.unit else ""
    (line,) = axes.plot(times, values, marker="o", markersize=3.5, linewidth=1.4, color=SAMPLE_COLOUR, label="samples")
    failing = [p for p in measured if not p.ok]
    if failing:
        axes.plot(
            [_days(p.at) for p in failing],
            [float(p.value) for p in failing if p.value is not None],
            linestyle="none",
            marker="o",
            markersize=6,
            markerfacecolor="none",
            markeredgecolor=FAILING_COLOUR,
            markeredgewidth=1.5,
            label="outside threshold",
        )
    errors = [_days(p.at) for p in condition.points if p.value is None]
    if errors:
        axes.plot(
            errors,
            [0.0] * len(errors),
            linestyle="none",
            marker="x",
            color=FAILING_COLOUR,
            transform=axes.get_xaxis_transform(),
            clip_on=False,
            label="probe error",
        )
    suffix = f" {condition.unit}" if condition.unit else ""
    for bound, sign in ((condition.upper, "≤"), (condition.lower, "≥")):
        if bound is not None:
            axes.axhline(
                bound,
                color=THRESHOLD_COLOUR,
                linestyle="--",
                linewidth=1.3,
                label=f"threshold {sign} {bound:g}{suffix}",
            )
    axes.set_ylabel(f"{condition.name}{unit}", fontsize=9)
    _fit_y(axes, [*values, *(b for b in (condition.upper, condition.lower) if b is not None)])
    # Read back from the artist: the series reported is what was drawn, not what we meant to draw.
    drawn_x, drawn_y = (np.asarray(data, dtype=float) for data in line.get_data())
    drawn_times = tuple(datetime.fromtimestamp(float(x) * DAY, UTC) for x in drawn_x)
    return Series(condition.name, drawn_times, tuple(float(y) for y in drawn_y))


def _fit_y(axes: Axes, shown: list[float]) -> None:
    """Room around samples and thresholds so neither sits on the frame; never below 0 for positive values."""
    if not shown:
        return
    low, high = min(shown), max(shown)
    span = (high - low) or abs(high) or 1.0
    bottom = low - span * 0.15
    axes.set_ylim(0 if bottom < 0 <= low else bottom, high + span * 0.15)


def _decorate(axes: Axes, retro: Retrospective, marks: dict[str, datetime], zone: ZoneInfo) -> None:
    from matplotlib.dates import AutoDateLocator, DateFormatter

    window = retro.window
    if window is not None and window.fault_start is not None and window.fault_end is not None:
        axes.axvspan(
            _days(window.fault_start),
            _days(window.fault_end),
            color=FAULT_COLOUR,
            alpha=0.45,
            linewidth=0,
            label="fault window",
        )
    for kind, moment in marks.items():
        label, colour, style = MARKS[kind]
        axes.axvline(_days(moment), color=colour, linestyle=style, linewidth=1.4, label=label)
    # matplotlib.dates ships without annotations.
    axes.xaxis.set_major_locator(AutoDateLocator(tz=zone, minticks=4, maxticks=9))  # type: ignore[no-untyped-call]
    axes.xaxis.set_major_formatter(DateFormatter("%H:%M:%S", tz=zone))  # type: ignore[no-untyped-call]
    axes.grid(True, color="#dddddd", linewidth=0.6)
    axes.spines[["top", "right"]].set_visible(False)
    if window is not None:
        margin = max((window.end - window.start) * 0.03, timedelta(seconds=2))
        axes.set_xlim(_days(window.start - margin), _days(window.end + margin))


def _days(moment: datetime) -> float:
    """matplotlib's date number: days since its default epoch, 1970-01-01 UTC."""
    return moment.timestamp() / DAY


def _marks(retro: Retrospective) -> dict[str, datetime]:
    found: dict[str, datetime] = {}
    for kind in ("injected", "breach", "reverted", "recovered"):
        moment = retro.moment(kind)
        if moment is not None:
            found["aborted" if kind == "reverted" and retro.ending in ABORTS else kind] = moment
    return found


def _title(retro: Retrospective) -> str:
    title = f"{retro.label} · {retro.experiment_id} {retro.title}"
    title = title if len(title) <= 70 else title[:69] + "…"
    return f"{title}\nhypothesis {retro.verdict.value} · {retro.ending.value} · {retro.environment}"


def _zone_name(retro: Retrospective, zone: ZoneInfo) -> str:
    moment = retro.window.start if retro.window is not None else None
    return moment.astimezone(zone).strftime("%Z") if moment is not None else retro.zone


def chart_alt_text(retro: Retrospective) -> str:
    """A short description for screen readers (Slack's ``alt_txt``)."""
    names = ", ".join(c.name for c in retro.conditions) or "no stop conditions"
    return f"{retro.label}: samples of {names} over time against their thresholds, fault window shaded."
