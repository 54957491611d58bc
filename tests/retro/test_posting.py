"""Posting a retrospective into the run's thread on the fake Slack: blocks, then the chart through the three-step
upload (files.getUploadURLExternal, the bytes, files.completeUploadExternal into the thread), then the channel line,
then ``retrospective.posted`` in the audit chain. For every way a run ends, on both databases."""

from __future__ import annotations

import io
import json
import threading
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from slack_sdk import WebClient

from bot.audit import service as audit
from bot.console.shell import ConsoleSurface
from bot.interface.kit import Message
from bot.interface.learning.messages import CHART_MISSING, retro_renderers
from bot.interface.learning.retrospectives import SurfaceRetroOutlet
from bot.retro.flows import Destination, Posted, post_once, post_retrospective
from bot.retro.models import RetrospectivePost
from bot.retro.service import build
from bot.runs.core import RunCore
from bot.slack.files import SlackRetroOutlet, upload_file
from tests.conftest import Clock
from tests.fakeslack.identity import DEFAULT_CHANNEL_ID as CHANNEL
from tests.fakeslack.server import FakeSlack
from tests.retro import stories

ZONE = ZoneInfo("Australia/Sydney")
SUMMARY_CHANNEL = "C0RELIAB1"


@pytest.fixture
def client(slack: FakeSlack) -> WebClient:
    slack.add_channel(SUMMARY_CHANNEL, "reliability")
    return WebClient(token=slack.token, base_url=slack.url)


def post(core: RunCore, client: WebClient, run_id: int, thread_ts: str) -> Posted:
    return post_retrospective(
        core.db,
        run_id,
        build=lambda: build(core.db, run_id, zone=ZONE, environ={}),
        renderers=retro_renderers(),
        poster=SlackRetroOutlet(client),
        destination=Destination(CHANNEL, thread_ts, summary_channel=SUMMARY_CHANNEL),
    )


def run_message(client: WebClient) -> str:
    return str(client.chat_postMessage(channel=CHANNEL, text="RUN-1 card")["ts"])


@pytest.mark.parametrize("ending", sorted(stories.ENDINGS))
def test_retrospective_and_chart_land_in_the_runs_thread(
    slack: FakeSlack, client: WebClient, core: RunCore, clock: Clock, ending: str
) -> None:
    story = stories.ENDINGS[ending](core, clock)
    parent = run_message(client)

    result = post(core, client, story.run_id, parent)

    assert result.chart_attached and not result.already
    retro_message, chart_share = slack.replies(CHANNEL, parent)
    assert retro_message["ts"] == result.ts and "Retrospective" in json.dumps(retro_message["blocks"])
    assert CHART_MISSING not in json.dumps(retro_message["blocks"])
    methods = [c.method for c in slack.calls()]
    steps = ["files.getUploadURLExternal", FakeSlack.UPLOAD, "files.completeUploadExternal"]
    assert [m for m in methods if m in steps] == steps
    complete = slack.last("files.completeUploadExternal")
    assert (complete.params["channel_id"], complete.params["thread_ts"]) == (CHANNEL, parent)
    (uploaded,) = slack.files()
    assert uploaded.content is not None and uploaded.content.startswith(b"\x89PNG\r\n\x1a\n")
    assert uploaded.filename == f"RUN-{story.run_id}-retrospective.png" and uploaded.thread_ts == parent
    assert chart_share["files"][0]["id"] == uploaded.id and uploaded.alt_txt
    (line,) = slack.messages(SUMMARY_CHANNEL)
    assert f"RUN-{story.run_id} (CE-01, staging)" in line["text"] and f"thread_ts={parent}" in line["text"]


def test_posting_is_recorded_once_in_the_audit_chain(
    slack: FakeSlack, client: WebClient, core: RunCore, clock: Clock
) -> None:
    story = stories.breached(core, clock)
    parent = run_message(client)

    first = post(core, client, story.run_id, parent)
    again = post(core, client, story.run_id, parent)

    assert again == Posted(story.run_id, CHANNEL, first.ts, True, already=True)
    assert len(slack.replies(CHANNEL, parent)) == 2  # the retrospective and its chart, once
    with core.db.transaction() as session:
        (event,) = [e for e in audit.timeline(session, story.run_id) if e.action == "retrospective.posted"]
        assert json.loads(event.payload) == {"channel": CHANNEL, "ts": first.ts, "chart": True, "verdict": "refuted"}
        assert session.get(RetrospectivePost, story.run_id) is not None
        assert audit.verify(session).ok


def test_a_failed_upload_leaves_the_text_saying_so(
    slack: FakeSlack, client: WebClient, core: RunCore, clock: Clock
) -> None:
    story = stories.held(core, clock)
    parent = run_message(client)
    slack.fail_next("files.completeUploadExternal", status=200, error="not_in_channel")

    result = post(core, client, story.run_id, parent)

    assert not result.chart_attached
    (retro_message,) = slack.replies(CHANNEL, parent)
    assert CHART_MISSING in json.dumps(retro_message["blocks"])
    with core.db.transaction() as session:
        row = session.get(RetrospectivePost, story.run_id)
        assert row is not None and not row.chart_attached


def test_upload_file_goes_through_the_three_steps(slack: FakeSlack, client: WebClient) -> None:
    parent = run_message(client)

    assert upload_file(client, channel=CHANNEL, thread_ts=parent, content=b"a,b\n1,2\n", filename="x.csv", title="X")

    (uploaded,) = slack.files()
    assert (uploaded.content, uploaded.title, uploaded.channels) == (b"a,b\n1,2\n", "X", [CHANNEL])
    assert slack.last("files.getUploadURLExternal").params["length"] == "8"


def test_upload_into_a_reply_is_refused_and_reported(slack: FakeSlack, client: WebClient) -> None:
    parent = run_message(client)
    reply = str(client.chat_postMessage(channel=CHANNEL, text="reply", thread_ts=parent)["ts"])

    assert not upload_file(client, channel=CHANNEL, thread_ts=reply, content=b"png", filename="c.png", title="C")
    assert not slack.last("files.completeUploadExternal").ok


def test_upload_when_slack_is_down_is_false(slack: FakeSlack, client: WebClient) -> None:
    slack.fail_next("files.getUploadURLExternal", status=200, error="fatal_error")

    assert not upload_file(client, channel=CHANNEL, content=b"png", filename="c.png", title="C")
    assert slack.files() == []


def test_the_console_gets_the_retrospective_and_the_chart_as_a_file(
    core: RunCore, clock: Clock, tmp_path: Path
) -> None:
    story = stories.breached(core, clock)
    out = io.StringIO()
    surface = ConsoleSurface(out, ZONE, names={"rita": "Rita"})
    _, parent = surface.post("#chaos", Message(text="RUN-1 card"))

    result = post_retrospective(
        core.db,
        story.run_id,
        build=lambda: build(core.db, story.run_id, zone=ZONE, environ={}),
        renderers=retro_renderers(surface.renderer),
        poster=SurfaceRetroOutlet(surface, tmp_path),
        destination=Destination("#chaos", parent, summary_channel="#chaos"),
    )

    chart = tmp_path / f"RUN-{story.run_id}-retrospective.png"
    assert result.chart_attached and chart.read_bytes().startswith(b"\x89PNG")
    printed = out.getvalue()
    assert "Hypothesis refuted." in printed and str(chart) in printed and "Add action item" in printed


def test_each_rollback_s_result_is_in_the_slack_and_console_retrospective(
    slack: FakeSlack, client: WebClient, core: RunCore, clock: Clock, tmp_path: Path
) -> None:
    story = stories.rollback_failed(core, clock)
    parent = run_message(client)

    post(core, client, story.run_id, parent)

    retro_message, _chart = slack.replies(CHANNEL, parent)
    posted = json.dumps(retro_message["blocks"])
    assert ":white_check_mark: flip-flag-off: succeeded in 250 ms" in posted
    assert ":x: tell-the-&lt;team&gt;: *failed* after 1.5 s: answered HTTP 503 &lt;!channel&gt;" in posted

    out = io.StringIO()
    surface = ConsoleSurface(out, ZONE, names={})
    _, console_parent = surface.post("#chaos", Message(text="RUN-1 card"))
    in_console = stories.rollback_failed(core, clock)
    post_retrospective(
        core.db,
        in_console.run_id,
        build=lambda: build(core.db, in_console.run_id, zone=ZONE, environ={}),
        renderers=retro_renderers(surface.renderer),
        poster=SurfaceRetroOutlet(surface, tmp_path),
        destination=Destination("#chaos", console_parent, summary_channel="#chaos"),
    )
    printed = out.getvalue()
    assert "Rollbacks" in printed and "flip-flag-off: succeeded in 250 ms" in printed
    assert "tell-the-<team>: failed after 1.5 s: answered HTTP 503" in printed.replace("*", "")


def test_two_replicas_post_it_once(slack: FakeSlack, client: WebClient, core: RunCore, clock: Clock) -> None:
    story = stories.held(core, clock)
    parent = run_message(client)
    start = threading.Barrier(2)
    results: dict[str, Posted | None] = {}

    def replica(name: str) -> None:
        outlet = SlackRetroOutlet(WebClient(token=slack.token, base_url=slack.url))
        start.wait()
        results[name] = post_once(
            core.db,
            story.run_id,
            holder=name,
            now=clock(),
            post=lambda: post_retrospective(
                core.db,
                story.run_id,
                build=lambda: build(core.db, story.run_id, zone=ZONE, environ={}),
                renderers=retro_renderers(),
                poster=outlet,
                destination=Destination(CHANNEL, parent, summary_channel=SUMMARY_CHANNEL),
            ),
        )

    threads = [threading.Thread(target=replica, args=(name,)) for name in ("replica-a", "replica-b")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)

    assert sorted(result is None for result in results.values()) == [False, True]
    assert len(slack.replies(CHANNEL, parent)) == 2 and len(slack.files()) == 1
    assert len(slack.messages(SUMMARY_CHANNEL)) == 1
