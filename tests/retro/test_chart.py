"""The chart: a valid PNG whose plotted data are the run's samples, with the moments that matter marked."""

from __future__ import annotations

import struct
import subprocess
import sys
from datetime import timedelta
from zoneinfo import ZoneInfo

import pytest

from bot.retro.chart import Chart, draw
from bot.retro.models import Retrospective
from bot.retro.service import build
from bot.runs.core import RunCore
from tests.conftest import Clock
from tests.retro import stories

ZONE = ZoneInfo("Australia/Sydney")
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def chart_of(core: RunCore, clock: Clock, ending: str) -> tuple[stories.Story, Retrospective, Chart]:
    story = stories.ENDINGS[ending](core, clock)
    retro = build(core.db, story.run_id, zone=ZONE, environ={})
    return story, retro, draw(retro)


def png_size(png: bytes) -> tuple[int, int]:
    assert png[:8] == PNG_SIGNATURE
    length, kind = struct.unpack(">I4s", png[8:16])
    assert (length, kind) == (13, b"IHDR")
    width, height = struct.unpack(">II", png[16:24])
    return width, height


def test_the_png_is_valid_and_its_size_is_reported(core: RunCore, clock: Clock) -> None:
    _, _, chart = chart_of(core, clock, "held")

    assert png_size(chart.png) == (chart.width, chart.height)
    assert chart.width >= 1000 and chart.height >= 350
    assert chart.png.endswith(b"IEND\xaeB`\x82")


def test_the_plotted_series_is_the_runs_samples(core: RunCore, clock: Clock) -> None:
    story, _, chart = chart_of(core, clock, "held")

    (series,) = chart.series
    recorded = sorted((story.at(seconds), value) for _, seconds, value, _ in story.samples if value is not None)
    assert series.condition == stories.CONDITION
    assert list(series.values) == [value for _, value in recorded]
    # Date numbers are floats: a moment survives the round trip to within microseconds.
    assert all(
        abs(drawn - at) < timedelta(milliseconds=1) for drawn, (at, _) in zip(series.times, recorded, strict=True)
    )
    assert len(series.values) == 3 + len(stories.HELD_FAULT) + 2


def test_probe_errors_are_not_plotted_as_values(core: RunCore, clock: Clock) -> None:
    story = stories.probe_errors(core, clock)
    chart = draw(build(core.db, story.run_id, zone=ZONE, environ={}))

    assert len(chart.series[0].values) == len(story.samples) - 2
    png_size(chart.png)


@pytest.mark.parametrize(
    ("ending", "marks"),
    [
        ("held", {"injected", "reverted", "recovered"}),
        ("breached", {"injected", "breach", "aborted"}),
        ("aborted by a person", {"injected", "aborted"}),
        ("controller lost", {"injected", "aborted"}),
        ("failed", set()),
    ],
)
def test_moments_are_marked(core: RunCore, clock: Clock, ending: str, marks: set[str]) -> None:
    story, _, chart = chart_of(core, clock, ending)

    assert set(chart.marks) == marks
    if "breach" in marks:
        assert chart.marks["breach"] == story.at(30)
    png_size(chart.png)


def test_matplotlib_is_not_loaded_until_a_chart_is_drawn() -> None:
    code = (
        "import sys, bot.retro.chart, bot.retro.service, bot.retro.flows, bot.interface.learning.messages;"
        "sys.exit('matplotlib' in sys.modules)"
    )
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0
