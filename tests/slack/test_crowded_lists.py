"""Issue 16: with 200 running runs among 500 planned ones, ``/chaos status``, ``/chaos status running`` and App
Home (with **Show more**) never hide a running run, say how many each cut list left out, and stay within
Slack's limits (the fake Slack refuses any message or view that breaks them).

The runs are written straight into the server's database; everything else goes through the real HTTP path.
Their controller is "another replica" holding a live lease, so this server's dead man's switch leaves them be.
The server is this module's own and is stopped after it, so nothing needs aborting.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from bot.catalogue.service import load_catalogue
from bot.runs.models import RunState
from storage.db import Database, utcnow
from tests.core.helpers import add_runs
from tests.fakeslack import wire
from tests.fakeslack.server import FakeSlack

from .conftest import (
    EXPERIMENT,
    OWNER,
    RELIABILITY,
    SECURITY,
    STAKEHOLDER_GROUP,
    STAKEHOLDERS,
    Bot,
    ChaosbotServer,
    ServerRegistry,
    show_log_on_failure,
)
from .test_commands import headers_index

RUNNING, PLANNED = 200, 500
ABORT = "run.abort"
ELSEWHERE = "another-replica"  # holds the running runs' leases


@pytest.fixture(scope="module")
def crowded_server(chaosbot_servers: ServerRegistry) -> Iterator[tuple[ChaosbotServer, list[int]]]:
    """Its own SQLite server with 200 running runs (120 older and 80 newer than 500 planned ones)."""
    with chaosbot_servers.own("sqlite-crowded") as server:
        yield server, _crowd(server)


def _crowd(server: ChaosbotServer) -> list[int]:
    experiment = load_catalogue(Path(server.env["CHAOSBOT_CATALOGUE"])).get(EXPERIMENT)
    assert experiment is not None
    db = Database(server.database_url)
    now = utcnow()
    later = now + timedelta(days=3)  # far from any notice, automatic start or plan expiry
    try:
        running = add_runs(db, experiment, RunState.RUNNING, 120, planned_start=now, owner=OWNER, leased_to=ELSEWHERE)
        add_runs(db, experiment, RunState.PLANNED, PLANNED, planned_start=later, owner=OWNER)
        running += add_runs(
            db, experiment, RunState.RUNNING, RUNNING - 120, planned_start=now, owner=OWNER, leased_to=ELSEWHERE
        )
    finally:
        db.dispose()
    return running


@pytest.fixture
def crowded(crowded_server: tuple[ChaosbotServer, list[int]], slack: FakeSlack, request: pytest.FixtureRequest) -> Bot:
    server, _running = crowded_server
    slack.set_usergroup(STAKEHOLDER_GROUP, STAKEHOLDERS)
    show_log_on_failure(request.node, server)
    return Bot(server, slack)


@pytest.fixture
def running_ids(crowded_server: tuple[ChaosbotServer, list[int]]) -> set[int]:
    return set(crowded_server[1])


def aborts(blocks: list[dict[str, Any]]) -> list[int]:
    """The runs whose Abort button the blocks carry, in order."""
    return [
        json.loads(block["accessory"]["value"])["run"]
        for block in blocks
        if (block.get("accessory") or {}).get("action_id") == ABORT
    ]


def shown(blocks: list[dict[str, Any]]) -> str:
    return json.dumps(blocks, ensure_ascii=False)


def ephemerals(bot: Bot, user: str, count: int) -> list[dict[str, Any]]:
    calls = bot.slack.wait_for(
        "chat.postEphemeral",
        count=count,
        predicate=lambda c: c.time >= bot.sent_at and c.params.get("user") == user,
    )
    assert all(call.ok for call in calls), [call.response for call in calls]
    return [call.params for call in calls]


def test_status_shows_running_runs_first_and_true_counts(crowded: Bot, running_ids: set[int]) -> None:
    bot = crowded
    bot.command("status", SECURITY)
    [answer] = ephemerals(bot, SECURITY, 1)

    blocks = answer["blocks"]
    listed = aborts(blocks)
    assert len(listed) == 20 and set(listed) <= running_ids
    assert listed == sorted(running_ids, reverse=True)[:20]  # the newest running runs, before any planned one
    text = shown(blocks)
    assert "*Running now: 200*" in text and "… and 180 more running: `/chaos status running`" in text
    assert "*Planned or approved: 500*" in text and "… and 460 more planned or approved." in text
    assert len(blocks) <= 50 and "Running now: 200" in answer["text"]


def test_status_running_lists_every_running_run_with_its_abort_button(crowded: Bot, running_ids: set[int]) -> None:
    bot = crowded
    bot.command("status running", SECURITY)
    answers = ephemerals(bot, SECURITY, 5)

    listed = [run_id for answer in answers for run_id in aborts(answer["blocks"])]
    assert listed == sorted(running_ids, reverse=True)  # each once, newest first, the messages in order
    assert "*Running now: 200* · 1 to 45 of 200" in shown(answers[0]["blocks"])
    assert "*Running now: 200* · 181 to 200 of 200" in shown(answers[-1]["blocks"])
    assert all(len(answer["blocks"]) <= 50 for answer in answers)


def test_app_home_reaches_every_running_run_with_show_more(crowded: Bot, running_ids: set[int]) -> None:
    bot = crowded
    user = RELIABILITY
    assert bot.send(wire.event_callback(wire.app_home_opened(user))).status == 200
    published = bot.slack.wait_for("views.publish", predicate=lambda c: c.params.get("user_id") == user)
    assert published[-1].ok, published[-1].response

    seen: list[int] = []
    for page in range(1, 6):
        home = bot.slack.home_view(user)
        assert home is not None and len(home["blocks"]) <= 100
        seen += aborts(home["blocks"])
        text = shown(home["blocks"])
        assert f"Running runs {(page - 1) * 40 + 1} to {page * 40} of 200, newest first." in text
        awaiting = home["blocks"][headers_index(home["blocks"], "Waiting for your approval") :]
        assert "… and 480 more wait for you" in shown(awaiting) and "… and 480 more planned or approved." in text
        if page == 5:
            assert "home.more" not in text
            break
        count = len(bot.slack.calls("views.publish"))
        assert bot.send(wire.block_action("home.more", user_id=user, view=home)).status == 200
        bot.slack.wait_for("views.publish", count=count + 1)
        bot.settle()
    assert seen == sorted(running_ids, reverse=True)  # every running run, once, each with its Abort button

    count = len(bot.slack.calls("views.publish"))
    assert bot.send(wire.block_action("home.first", user_id=user, view=home)).status == 200
    bot.slack.wait_for("views.publish", count=count + 1)
    first = bot.slack.home_view(user)
    assert first is not None and aborts(first["blocks"]) == seen[:40]


def test_a_bare_abort_names_some_running_runs_counts_them_all_and_aborts_none(
    crowded: Bot, running_ids: set[int]
) -> None:
    bot = crowded
    bot.command("abort", SECURITY)
    [answer] = ephemerals(bot, SECURITY, 1)

    newest = ", ".join(f"RUN-{run_id}" for run_id in sorted(running_ids, reverse=True)[:10])
    assert answer["text"].startswith(f":warning: 200 runs are running ({newest} and 190 more): name one")
    assert "`/chaos status running` lists them all" in answer["text"]
    assert bot.server.query("SELECT count(*) FROM runs WHERE state = 'running'")[0][0] == 200
