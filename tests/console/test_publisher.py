"""The publisher keeps one message per run current, in a thread of its own, with bounded memory."""

from __future__ import annotations

import io
from collections.abc import Callable
from zoneinfo import ZoneInfo

from bot.console.shell import ConsoleSurface
from bot.interface.publisher import Publisher
from bot.interface.service import RunMessages
from bot.runs.flows import Lifecycle, PlanRequest
from bot.words import Person, Words
from storage.db import Database

SYDNEY = ZoneInfo("Australia/Sydney")


def test_per_run_state_stays_bounded_and_messages_are_found_again(
    make_lifecycle: Callable[[Database], Lifecycle], db: Database
) -> None:
    lifecycle = make_lifecycle(db)
    out = io.StringIO()
    publisher = Publisher(lifecycle, ConsoleSurface(out, SYDNEY), channel="console", zone=SYDNEY, tracked=3)

    runs = [lifecycle.plan("oliver", PlanRequest(experiment_id="CE-01")) for _ in range(5)]
    posted = {run.id: publisher.post_plan(run.id) for run in runs}
    for run in runs:
        publisher.run_changed(run.id)
        publisher.timeline(run.id, Words.of("Approved by ", Person("rita"), " as reliability partner."))

    assert publisher.tracked_runs == 3
    messages = RunMessages(db)
    assert {run.id: messages.find(run.id) for run in runs} == posted  # one message per run, where it was posted
    assert publisher.post_plan(runs[0].id) == posted[runs[0].id]  # forgotten locks do not post it twice
    assert out.getvalue().count("Approved by @rita as reliability partner.") == 5
