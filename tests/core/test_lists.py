"""Lists of runs never hide a running one: running runs come first, pages reach every one of them, and every
count is the true count (issue 16: 200 running runs among 500 planned ones)."""

from __future__ import annotations

from datetime import timedelta

import pytest

from bot.runs.core import RunCore
from bot.runs.models import RunState
from storage.db import Database
from tests.conftest import Clock
from tests.core.helpers import add_runs

APPROVER = "rita"  # the demo policy's reliability partner


@pytest.fixture
def crowded(db: Database, core: RunCore, clock: Clock) -> tuple[list[int], list[int]]:
    """200 running runs, older and newer than 500 planned ones: (running ids, planned ids)."""
    experiment = core.catalogue.get("CE-01")
    assert experiment is not None
    start = clock() + timedelta(days=2)
    older = add_runs(db, experiment, RunState.RUNNING, 120, planned_start=clock())
    planned = add_runs(db, experiment, RunState.PLANNED, 500, planned_start=start)
    newer = add_runs(db, experiment, RunState.RUNNING, 80, planned_start=clock())
    return older + newer, planned


def test_status_shows_running_runs_first_with_their_true_count(
    core: RunCore, crowded: tuple[list[int], list[int]]
) -> None:
    running, _planned = crowded

    status = core.queries.status(running=20, waiting=40)

    assert [run.id for run in status.running.items] == sorted(running, reverse=True)[:20]
    assert (status.running.total, status.running.left_out) == (200, 180)
    assert len(status.waiting.items) == 40 and all(r.run_state is RunState.PLANNED for r in status.waiting.items)
    assert (status.waiting.total, status.waiting.left_out) == (500, 460)


def test_home_pages_reach_every_running_run_once(core: RunCore, crowded: tuple[list[int], list[int]]) -> None:
    running, _planned = crowded
    seen: list[int] = []
    offset = 0
    while True:
        home = core.queries.home(APPROVER, running_offset=offset, running=40, listed=20)
        assert home.running.total == 200 and home.running.offset == offset
        seen += [run.id for run in home.running.items]
        if not home.running.after:
            break
        offset += 40
    assert seen == sorted(running, reverse=True)

    past_the_end = core.queries.home(APPROVER, running_offset=4000, running=40, listed=20)
    assert past_the_end.running.offset == 160 and [r.id for r in past_the_end.running.items] == seen[160:]


def test_home_counts_what_waits_for_you_and_what_is_coming(core: RunCore, crowded: tuple[list[int], list[int]]) -> None:
    _running, planned = crowded

    home = core.queries.home(APPROVER, running=40, listed=20)

    assert len(home.awaiting_you.items) == 20 and home.awaiting_you.total == 500
    assert next(roles for _run, roles in home.awaiting_you.items)[0].label == "reliability partner"
    assert len(home.upcoming.items) == 20 and (home.upcoming.total, home.upcoming.left_out) == (500, 480)
    assert {run.id for run in home.upcoming.items} <= set(planned)
    owner_home = core.queries.home("oliver", running=40, listed=20)  # the owner cannot approve their own runs
    assert (owner_home.awaiting_you.total, owner_home.awaiting_you.items) == (0, [])


def test_running_runs_are_all_read_however_many(core: RunCore, crowded: tuple[list[int], list[int]]) -> None:
    running, _planned = crowded
    assert [run.id for run in core.queries.running_runs()] == sorted(running, reverse=True)
