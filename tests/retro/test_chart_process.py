"""Charts are drawn in a helper process that never outlives its server (the server itself: test_after_the_run)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator

import pytest

from bot.chart_process import ChartProcess, ChartProcessError
from bot.retro.chart import draw
from bot.runs.core import RunCore
from tests.conftest import Clock
from tests.retro import drawings
from tests.retro.test_chart import chart_of
from tests.waiting import wait_until


@pytest.fixture
def helper() -> Iterator[ChartProcess]:
    process = ChartProcess(idle_seconds=30, timeout_seconds=20)
    yield process
    process.close()


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def test_the_helper_draws_the_same_chart_and_the_caller_never_loads_matplotlib(
    core: RunCore, clock: Clock, helper: ChartProcess
) -> None:
    _, retro, here = chart_of(core, clock, "breached")
    there = helper.draw(draw, retro)

    assert (there.width, there.height, there.series, there.marks) == (here.width, here.height, here.series, here.marks)
    assert there.png[:8] == b"\x89PNG\r\n\x1a\n" and abs(len(there.png) - len(here.png)) < len(here.png) // 10
    assert helper.draw(drawings.modules_loaded, "matplotlib")


def test_a_drawing_that_fails_is_reported_and_the_helper_keeps_serving(helper: ChartProcess) -> None:
    first = helper.draw(drawings.helper_pid, None)
    with pytest.raises(ChartProcessError, match="ValueError: no data to plot"):
        helper.draw(drawings.fails, "no data to plot")
    assert helper.draw(drawings.helper_pid, None) == first


def test_what_a_drawing_prints_does_not_corrupt_its_answer(helper: ChartProcess) -> None:
    assert helper.draw(drawings.prints_then_answers, "the answer") == "the answer"
    assert helper.draw(drawings.prints_then_answers, "and the next") == "and the next"


def test_a_helper_that_dies_while_drawing_is_reported_and_replaced(helper: ChartProcess) -> None:
    before = helper.draw(drawings.helper_pid, None)
    with pytest.raises(ChartProcessError, match="exited without drawing"):
        helper.draw(drawings.dies, None)
    after = helper.draw(drawings.helper_pid, None)
    assert after != before and not alive(before)


def test_a_drawing_that_takes_too_long_is_given_up_and_its_helper_stopped() -> None:
    helper = ChartProcess(idle_seconds=30, timeout_seconds=20)
    try:
        stuck = helper.draw(drawings.helper_pid, None)  # started: its start-up does not count against 0.5 s
        helper.timeout_seconds = 0.5
        with pytest.raises(ChartProcessError, match=r"longer than 0\.5 s"):
            helper.draw(drawings.sleeps, 30.0)
        assert not alive(stuck) and helper.pid is None
        helper.timeout_seconds = 20
        assert helper.draw(drawings.sleeps, 0.0) == 0.0
    finally:
        helper.close()


def test_an_idle_helper_exits_and_the_next_chart_starts_a_new_one() -> None:
    helper = ChartProcess(idle_seconds=0.3, timeout_seconds=20)
    try:
        first = helper.draw(drawings.helper_pid, None)
        wait_until(lambda: not alive(first), timeout=10, what="the idle helper to exit")
        assert helper.pid is None
        second = helper.draw(drawings.helper_pid, None)
        assert second != first and helper.pid == second
    finally:
        helper.close()


def test_the_helper_exits_when_the_process_that_started_it_is_killed() -> None:
    code = (
        "from bot.chart_process import ChartProcess; from tests.retro.drawings import helper_pid;"
        "print(ChartProcess(idle_seconds=600).draw(helper_pid, None), flush=True);"
        "import time; time.sleep(600)"
    )
    parent = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE)
    try:
        assert parent.stdout is not None
        helper_pid = int(parent.stdout.readline())
        assert alive(helper_pid)
    finally:
        os.kill(parent.pid, signal.SIGKILL)
        parent.wait()
    wait_until(lambda: not alive(helper_pid), timeout=10, what="the orphaned helper to exit")


def test_a_request_that_races_the_helper_s_idle_exit_is_drawn_by_a_fresh_helper() -> None:
    helper = ChartProcess(idle_seconds=0, timeout_seconds=20)  # it exits the moment it has nothing to do
    try:
        assert [helper.draw(drawings.sleeps, float(i) / 1000) for i in range(15)] == [i / 1000 for i in range(15)]
    finally:
        helper.close()
