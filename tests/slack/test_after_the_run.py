"""After the run, from the outside (issue 9): the real server, signed requests, the fake Slack validating Block Kit.

- Every ended run (completed, aborted, failed) gets its retrospective in its thread, once, with the chart
  uploaded through the three-step flow into that thread, and a channel line linking to it.
- Add action item (button → form validated in the ack) → stored, filed in a GitHub backlog (a local server
  implementing the create-issue call), listed by ``/chaos actions`` with a Done button, closed.
- Grafana annotations created at the inject and ended at the revert (a local server implementing the API).
- ``/chaos report`` answers with the month's summary; a quarter's comes with its trend chart in its thread.
- The audit chain holds retrospective.posted, action_item.added/done and backlog.filed.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.adapters.servers import Call as CallTo
from tests.adapters.servers import FakeBackend, Reply, not_found, running
from tests.backlog.servers import GITHUB_TOKEN, FakeGitHub
from tests.dashboards.test_grafana import TOKEN as GRAFANA_TOKEN
from tests.dashboards.test_grafana import FakeGrafana
from tests.fakeslack import wire
from tests.fakeslack.server import Call, FakeSlack

from .conftest import (
    BROKEN_EXPERIMENT,
    CATALOGUE,
    CHANNEL,
    OWNER,
    POLICY,
    RELIABILITY,
    STAKEHOLDER,
    Bot,
    ChaosbotServer,
    RunHandle,
    _bot,
    buttons,
    wait_until,
)

PNG = b"\x89PNG\r\n\x1a\n"
RETRO_TIMEOUT = 20.0  # the end is recorded, then the retrospective is built, drawn and posted


def retrospective(bot: Bot, run: RunHandle, timeout: float = RETRO_TIMEOUT) -> Call:
    """The retrospective posted in the run's thread (its header block names it)."""
    return bot.slack.wait_for(
        "chat.postMessage",
        timeout=timeout,
        predicate=lambda c: (
            c.ok
            and c.params.get("thread_ts") == run.ts
            and f"Retrospective · {run.label}" in json.dumps(c.params, ensure_ascii=False)
        ),
    )[-1]


def retro_message(bot: Bot, run: RunHandle) -> dict[str, Any]:
    ts = str(retrospective(bot, run).response["ts"])
    return bot.slack.message(CHANNEL, ts)


def assert_chart_in_thread(bot: Bot, run: RunHandle) -> None:
    completed = bot.slack.wait_for(
        "files.completeUploadExternal",
        timeout=RETRO_TIMEOUT,
        predicate=lambda c: c.ok and c.params.get("thread_ts") == run.ts,
    )
    assert len(completed) == 1, "the chart is shared once"
    assert completed[0].params["channel_id"] == CHANNEL
    (shared,) = [f for f in bot.slack.files() if f.thread_ts == run.ts]
    assert shared.content is not None and shared.content.startswith(PNG)
    assert shared.filename == f"{run.label}-retrospective.png" and shared.alt_txt
    assert bot.slack.calls("files.upload") == [] or all(
        c.params.get("thread_ts") is None for c in bot.slack.calls("files.upload")
    )


def assert_drawn_outside_the_server(bot: Bot) -> None:
    """matplotlib is mapped by the chart helper only: the server's own processes never load it."""

    def maps_matplotlib(pid: int) -> bool:
        try:
            return "/matplotlib/" in Path(f"/proc/{pid}/maps").read_text()
        except OSError:
            return False

    processes = bot.server.processes()
    helpers = [pid for pid, command in processes.items() if "bot.chart_process" in command]
    assert helpers and all(maps_matplotlib(pid) for pid in helpers), processes
    assert [command for pid, command in processes.items() if pid not in helpers and maps_matplotlib(pid)] == []


def assert_posted_once(bot: Bot, run: RunHandle) -> None:
    wait_until(
        lambda: bot.server.query("SELECT run_id FROM retrospectives WHERE run_id = :id", id=run.id),
        timeout=RETRO_TIMEOUT,
        what="the retrospective recorded",
    )
    bot.settle(quiet=0.5, timeout=10)
    posts = [
        c
        for c in bot.slack.calls("chat.postMessage")
        if c.params.get("thread_ts") == run.ts
        and f"Retrospective · {run.label}" in json.dumps(c.params, ensure_ascii=False)
    ]
    assert len(posts) == 1
    rows = bot.server.query(
        "SELECT channel_id, message_ts, chart_attached FROM retrospectives WHERE run_id = :id", id=run.id
    )
    assert [tuple(r) for r in rows] == [(CHANNEL, posts[0].response["ts"], True)]
    audited = bot.server.query(
        "SELECT count(*) FROM audit_events WHERE action = 'retrospective.posted' AND run_id = :id", id=run.id
    )
    assert audited[0][0] == 1


def channel_line(bot: Bot, run: RunHandle) -> Call:
    """The one-line summary in the channel, linking to the retrospective."""
    return bot.slack.wait_for(
        "chat.postMessage",
        timeout=RETRO_TIMEOUT,
        predicate=lambda c: (
            c.params.get("channel") == CHANNEL
            and not c.params.get("thread_ts")
            and str(c.params.get("text", "")).find(f"{run.label} (") >= 0
            and "|Retrospective>" in str(c.params.get("text"))
        ),
    )[-1]


# -- retrospectives ---------------------------------------------------------------------------------------


def test_a_completed_run_gets_its_retrospective_and_chart_in_its_thread(bot: Bot) -> None:
    run = bot.approved_run()
    assert bot.command(f"start {run.label} --dry-run --for 2s", OWNER).status == 200
    retro = retrospective(bot, run)
    assert "completed" in retro.params["text"] and "hypothesis" in retro.params["text"]
    assert_chart_in_thread(bot, run)
    assert_drawn_outside_the_server(bot)
    ts = str(retro.response["ts"])
    assert f"p{ts.replace('.', '')}" in channel_line(bot, run).params["text"]
    assert "retro.add_action" in buttons(bot.slack.message(CHANNEL, ts))
    assert_posted_once(bot, run)


def test_an_aborted_run_gets_its_retrospective_and_chart_in_its_thread(bot: Bot) -> None:
    run = bot.approved_run()
    bot.start(run)
    assert bot.command(f"abort {run.label} enough for today", RELIABILITY).status == 200
    retro = retrospective(bot, run)
    assert "aborted" in retro.params["text"]
    assert "enough for today" in json.dumps(retro.params["blocks"])  # the abort's reason is on its timeline
    assert_chart_in_thread(bot, run)
    channel_line(bot, run)
    assert_posted_once(bot, run)


def test_a_failed_run_gets_its_retrospective_too(sqlite_bot: Bot) -> None:
    bot = sqlite_bot
    run = bot.approved_run(BROKEN_EXPERIMENT)
    assert bot.click("run.start", run, OWNER).status == 200
    retro = retrospective(bot, run)
    assert "failed" in retro.params["text"] and "not tested" in retro.params["text"]
    assert_chart_in_thread(bot, run)
    assert_posted_once(bot, run)


# -- a server with a backlog, Grafana and a reporting channel ---------------------------------------------


def backlog_policy(github_url: str) -> str:
    return (
        POLICY
        + f'backlog: {{kind: github, repo: acme/reliability, token: "${{GITHUB_TOKEN}}", api_url: "{github_url}"}}\n'
    )


BREAKING_EXPERIMENT = "CE-93"


def breaking_catalogue(portal_url: str) -> str:
    """The shared catalogue plus an experiment whose fault breaks the portal's health check: it auto-aborts."""
    return (
        CATALOGUE
        + f"""\
  - id: {BREAKING_EXPERIMENT}
    title: Flag flip that breaks the portal
    hypothesis: The portal's health check keeps answering 200 while the flag is on.
    method: Flip the flag through the portal's flag API.
    expected_outcome: The health check stays green.
    safeguards:
      - Loopback only.
    rollback_steps:
      - Turn the flag off.
    environments: [staging]
    fault:
      adapter: http
      params:
        timeout_seconds: 2
        retries: 0
        backoff_seconds: 0
        inject: {{method: PUT, url: "{portal_url}/flags/breaker", json: {{enabled: true}}}}
        revert: {{method: PUT, url: "{portal_url}/flags/breaker", json: {{enabled: false}}}}
    stop_conditions:
      - name: portal health
        probe: {{kind: http, url: "{portal_url}/health", timeout_seconds: 1, expect_status: [200]}}
    max_duration: 30s
    rto: 10s
    probe_interval: 1s
"""
    )


class FakePortal(FakeBackend):
    """A flag API and a health check that fails while the flag is on."""

    def __init__(self) -> None:
        super().__init__()
        self.flag_on = False

    def route(self, call: CallTo) -> Reply:
        if call.method == "PUT" and call.path == "/flags/breaker":
            self.flag_on = bool((call.body or {}).get("enabled"))
            return Reply(200, {"enabled": self.flag_on})
        if call.method == "GET" and call.path == "/health":
            return Reply(500, {"status": "broken"}) if self.flag_on else Reply(200, {"status": "ok"})
        return not_found()


pytestmark = pytest.mark.xdist_group("slack-after-the-run")  # the module's server starts on one worker only


@pytest.fixture(scope="module")
def portal() -> Iterator[FakePortal]:
    backend = FakePortal()
    with running(backend) as server:
        backend.url = server.url  # type: ignore[attr-defined]  # where the server listens, for the catalogue
        yield backend


@pytest.fixture(scope="module")
def github() -> Iterator[FakeGitHub]:
    backend = FakeGitHub()
    with running(backend) as server:
        backend.url = server.url  # type: ignore[attr-defined]  # where the server listens, for the policy
        yield backend


@pytest.fixture(scope="module")
def grafana() -> Iterator[FakeGrafana]:
    backend = FakeGrafana()
    with running(backend) as server:
        backend.url = server.url  # type: ignore[attr-defined]  # see above
        yield backend


@pytest.fixture(scope="module")
def learning_server(
    tmp_path_factory: pytest.TempPathFactory,
    fake_slack: FakeSlack,
    github: FakeGitHub,
    grafana: FakeGrafana,
    portal: FakePortal,
) -> Iterator[ChaosbotServer]:
    workdir = tmp_path_factory.mktemp("chaosbot-learning")
    env = {
        "GITHUB_TOKEN": GITHUB_TOKEN,
        "GRAFANA_URL": grafana.url,  # type: ignore[attr-defined]
        "GRAFANA_TOKEN": GRAFANA_TOKEN,
        "CHAOSBOT_SPOOL_DIR": str(workdir / "spool"),
    }
    server = ChaosbotServer("sqlite-learning", workdir, f"sqlite:///{workdir / 'chaosbot.db'}", fake_slack, None, env)
    Path(workdir / "policy.yml").write_text(
        backlog_policy(github.url),  # type: ignore[attr-defined]
        encoding="utf-8",
    )
    Path(workdir / "catalogue.yml").write_text(
        breaking_catalogue(portal.url),  # type: ignore[attr-defined]
        encoding="utf-8",
    )
    server.start()
    yield server
    server.stop()


@pytest.fixture
def learning_bot(learning_server: ChaosbotServer, slack: FakeSlack, request: pytest.FixtureRequest) -> Iterator[Bot]:
    yield from _bot(learning_server, slack, request)


def action_item_values(what: str, owner: str, due: str) -> dict[str, Any]:
    return {
        "what": {"value": wire.text_value(what)},
        "owner": {"value": {"type": "users_select", "selected_user": owner}},
        "due": {"value": wire.date_value(due)},
    }


def open_action_item_form(bot: Bot, run: RunHandle, user: str) -> dict[str, Any]:
    message = retro_message(bot, run)
    trigger = wire.trigger_id()
    request = wire.block_action("retro.add_action", user_id=user, message=message, channel_id=CHANNEL, trigger=trigger)
    assert bot.send(request).status == 200
    call = bot.slack.wait_for("views.open", predicate=lambda c: c.params.get("trigger_id") == trigger)[-1]
    assert call.ok, call.response
    return dict(call.response["view"])


def test_action_items_are_added_filed_listed_and_closed(
    learning_bot: Bot, github: FakeGitHub, grafana: FakeGrafana
) -> None:
    bot = learning_bot
    run = bot.approved_run()
    bot.start(run)
    assert bot.command(f"abort {run.label} cache alert missing", OWNER).status == 200
    view = open_action_item_form(bot, run, OWNER)
    assert [b["block_id"] for b in view["blocks"] if b["type"] == "input"] == ["what", "owner", "due"]

    yesterday = (date.today() - timedelta(days=2)).isoformat()
    refused = bot.submit(view, action_item_values("Alert when the cache pauses", STAKEHOLDER, yesterday), OWNER)
    assert refused.status == 200 and refused.json()["response_action"] == "errors"
    assert "in the past" in refused.json()["errors"]["due"]
    empty = bot.submit(view, action_item_values("  ", STAKEHOLDER, "2099-01-01"), OWNER)
    assert "what" in empty.json()["errors"]

    due = (date.today() + timedelta(days=10)).isoformat()
    added = bot.submit(view, action_item_values("Alert when the cache pauses", STAKEHOLDER, due), OWNER)
    assert (added.status, added.body) == (200, b"")
    bot.reply(run, "Action item AI-1 added by", timeout=10)
    wait_until(lambda: github.issues, timeout=10, what="the issue filed in GitHub")
    (issue,) = github.issues
    assert issue["title"] == f"[{run.label}] Alert when the cache pauses"
    assert f"archives/{CHANNEL}/p{run.ts.replace('.', '')}" in issue["body"]  # the run's thread
    wait_until(
        lambda: bot.server.query("SELECT backlog_url FROM action_items WHERE id = 1")[0][0] == issue["html_url"],
        timeout=10,
        what="the backlog link stored",
    )

    assert bot.command("actions", OWNER).status == 200
    listed = bot.ephemeral(OWNER, "Open action items")
    assert "AI-1" in json.dumps(bot.slack.calls("chat.postEphemeral")[-1].params["blocks"])
    ephemeral = bot.slack.calls("chat.postEphemeral")[-1].params
    assert issue["html_url"] in json.dumps(ephemeral["blocks"]) and listed

    done = wire.block_action("item.done", user_id=STAKEHOLDER, message=ephemeral, channel_id=CHANNEL)
    assert bot.send(done).status == 200
    bot.ephemeral(STAKEHOLDER, "AI-1 is done")
    assert bot.server.query("SELECT status, done_by FROM action_items WHERE id = 1")[0] == ("done", STAKEHOLDER)
    again = wire.block_action("item.done", user_id=STAKEHOLDER, message=ephemeral, channel_id=CHANNEL)
    assert bot.send(again).status == 200
    bot.ephemeral(STAKEHOLDER, "already marked done")

    assert_posted_once(bot, run)  # recorded once the chart and the channel line are out
    actions = [a for (a,) in bot.server.query("SELECT action FROM audit_events ORDER BY seq")]
    for kind in ("retrospective.posted", "action_item.added", "backlog.filed", "action_item.done"):
        assert kind in actions, kind
    assert bot.server.query("SELECT count(*) FROM audit_events WHERE action = 'backlog.filed'")[0][0] == 1

    # The dashboards were marked: created at the inject, ended at the revert, tagged with the run and experiment.
    def of_this_run() -> list[dict[str, Any]]:  # the fake is shared by the module: other tests' runs too
        return [a for a in list(grafana.annotations.values()) if run.label in a.get("tags", [])]

    wait_until(lambda: any("timeEnd" in a for a in of_this_run()), timeout=10, what="annotation end")
    (annotation,) = of_this_run()
    assert annotation["tags"] == ["chaosbot", run.label, "CE-90"]
    assert annotation["time"] <= annotation["timeEnd"]


def test_report_answers_with_the_month_and_a_quarter_with_its_chart(bot: Bot) -> None:
    assert bot.command("report", OWNER).status == 200
    month = datetime.now(UTC).astimezone().strftime("%B %Y")
    posted = bot.slack.wait_for(
        "chat.postMessage",
        timeout=10,
        predicate=lambda c: c.ok and "Chaos experiments, " in str(c.params.get("text")),
    )[-1]
    assert posted.params["channel"] == CHANNEL and not posted.params.get("thread_ts")
    assert "Chaos experiments" in posted.params["blocks"][0]["text"]["text"]
    assert month.split()[1] in posted.params["blocks"][0]["text"]["text"]

    year = datetime.now(UTC).year
    assert bot.command(f"report {year}-Q1", OWNER).status == 200
    quarterly = bot.slack.wait_for(
        "chat.postMessage",
        timeout=10,
        predicate=lambda c: c.ok and f"quarterly update, Q1 {year}" in str(c.params.get("text")),
    )[-1]
    ts = quarterly.response["ts"]
    shared = bot.slack.wait_for(
        "files.completeUploadExternal", timeout=10, predicate=lambda c: c.ok and c.params.get("thread_ts") == ts
    )
    assert len(shared) == 1
    (chart,) = [f for f in bot.slack.files() if f.thread_ts == ts]
    assert chart.content is not None and chart.content.startswith(PNG)

    assert bot.command("report 2026-13", OWNER).status == 200
    assert "a month is 01 to 12" in bot.ephemeral(OWNER, "month")


def test_an_auto_aborted_run_gets_its_retrospective_naming_the_breach(learning_bot: Bot, portal: FakePortal) -> None:
    bot = learning_bot
    run = bot.approved_run(BREAKING_EXPERIMENT)
    assert bot.click("run.start", run, OWNER).status == 200
    retro = retrospective(bot, run)
    assert "aborted" in retro.params["text"] and "hypothesis refuted" in retro.params["text"]
    said = json.dumps(retro.params["blocks"], ensure_ascii=False)
    assert "portal health" in said and "breached" in said
    assert not portal.flag_on  # reverted by the auto-abort
    assert_chart_in_thread(bot, run)
    assert_posted_once(bot, run)
