"""Filing action items in GitHub, Jira and a webhook, each a local server implementing the documented call;
and a backlog that is down: the item is kept and filed exactly once when it comes back."""

from __future__ import annotations

import logging
import threading
from datetime import date
from typing import Any

import pytest
from pydantic import TypeAdapter, ValidationError
from sqlalchemy import func, select, update

from bot.actions.flows import FILED, ActionItems
from bot.actions.models import ActionItem, BacklogState
from bot.audit.models import AuditEvent
from bot.audit.service import verify
from bot.backlog.models import BacklogConfig
from bot.backlog.registry import backlog_for
from storage.db import Database
from tests.adapters.servers import closed_port_url, running
from tests.backlog.conftest import MakeItems
from tests.backlog.servers import GITHUB_TOKEN, JIRA_EMAIL, JIRA_TOKEN, FakeGitHub, FakeJira, FakeWebhook
from tests.conftest import Clock
from tests.reports.seed import SYDNEY

CONFIG: TypeAdapter[Any] = TypeAdapter(BacklogConfig)
GITHUB_ENV = {"GITHUB_TOKEN": GITHUB_TOKEN}


def github(url: str, environ: dict[str, str] = GITHUB_ENV) -> Any:
    config = CONFIG.validate_python(
        {"kind": "github", "repo": "acme/reliability", "token": "${GITHUB_TOKEN}", "api_url": url, "labels": ["chaos"]}
    )
    return backlog_for(config, environ=environ)


def filed_events(db: Database) -> int:
    with db.transaction() as session:
        return int(session.scalar(select(func.count()).where(AuditEvent.action == FILED)) or 0)


def test_github_issue_is_created_and_linked(db: Database, make_items: MakeItems, run_id: int, due: date) -> None:
    with running(FakeGitHub()) as server:
        items = make_items(github(server.url))
        item = items.add(run_id=run_id, what="Cache the share token", owner="U0FIXER", due_on=due, actor="U0OWNER")
        [issue] = server.backend.issues
    assert item.backlog_state is BacklogState.FILED
    assert (item.backlog_url, item.backlog_key) == ("https://github.com/acme/reliability/issues/1", "#1")
    assert issue["title"] == f"[RUN-{run_id}] Cache the share token"
    assert "- Owner: Grace Hopper" in issue["body"] and f"- Due: {due.isoformat()}" in issue["body"]
    assert f"https://acme.slack.com/archives/C1/p{run_id}" in issue["body"]
    assert issue["labels"] == [{"name": "chaos"}]
    assert server.backend.calls[0].headers["x-github-api-version"] == "2022-11-28"
    assert filed_events(db) == 1
    with db.transaction() as session:
        assert verify(session).ok


def test_jira_issue_is_created_with_an_adf_description(
    db: Database, make_items: MakeItems, run_id: int, due: date
) -> None:
    with running(FakeJira()) as server:
        server.backend.site = server.url
        config = CONFIG.validate_python(
            {
                "kind": "jira",
                "site": server.url,
                "project": "REL",
                "email": "${JIRA_EMAIL}",
                "token": "${JIRA_API_TOKEN}",
            }
        )
        backlog = backlog_for(config, environ={"JIRA_EMAIL": JIRA_EMAIL, "JIRA_API_TOKEN": JIRA_TOKEN})
        item = make_items(backlog).add(run_id=run_id, what="Retry budget", owner="U0FIXER", due_on=due, actor="U0OWNER")
        [issue] = server.backend.issues
    assert (item.backlog_url, item.backlog_key) == (f"{server.url}/browse/REL-1", "REL-1")
    fields = issue["fields"]
    assert fields["summary"] == f"[RUN-{run_id}] Retry budget"
    assert fields["issuetype"] == {"name": "Task"} and fields["project"] == {"key": "REL"}
    first = fields["description"]["content"][0]["content"][0]
    assert first == {"type": "text", "text": f"Action item AI-{item.id} from chaos experiment CE-02, RUN-{run_id}."}


def test_webhook_gets_the_filled_template_and_gives_the_link(
    db: Database, make_items: MakeItems, run_id: int, due: date
) -> None:
    with running(FakeWebhook()) as server:
        config = CONFIG.validate_python(
            {
                "kind": "webhook",
                "url": f"{server.url}/backlog",
                "headers": {"X-Backlog-Token": "${HOOK_SECRET}"},
                "body": {"summary": "{title}", "due": "{due}", "meta": {"run": "{run}", "raw": "{not a field}"}},
                "link_field": "ticket.web",
            }
        )
        backlog = backlog_for(config, environ={"HOOK_SECRET": FakeWebhook.secret})
        item = make_items(backlog).add(run_id=run_id, what="Fallback", owner="U0FIXER", due_on=due, actor="U0OWNER")
        [body] = server.backend.received
    assert body == {
        "summary": f"[RUN-{run_id}] Fallback",
        "due": due.isoformat(),
        "meta": {"run": f"RUN-{run_id}", "raw": "{not a field}"},
    }
    assert item.backlog_url == "https://tracker.example/t/1"


def test_an_outage_keeps_the_item_and_it_is_filed_once_after_recovery(
    db: Database, make_items: MakeItems, run_id: int, due: date, clock: Clock
) -> None:
    with running(FakeGitHub()) as server:
        server.backend.fail_next(500, 503)
        items = make_items(github(server.url))
        item = items.add(run_id=run_id, what="Cache the token", owner="U0FIXER", due_on=due, actor="U0OWNER")
        assert item.backlog_state is BacklogState.PENDING and "HTTP 500" in (item.backlog_error or "")

        assert items.file_pending().filed == 0  # the retry waits 30 s
        assert len(server.backend.calls) == 1

        clock.advance(seconds=31)
        assert items.file_pending().failed == 1  # 503: still down; the next wait is 60 s
        clock.advance(seconds=31)
        assert items.file_pending().filed == 0
        clock.advance(seconds=30)
        assert items.file_pending().filed == 1
        clock.advance(hours=2)
        assert items.file_pending().filed == 0

        assert len(server.backend.issues) == 1 and len(server.backend.calls) == 3
    final = items.get(item.id)
    assert final.backlog_state is BacklogState.FILED and final.backlog_error is None
    assert final.backlog_url == "https://github.com/acme/reliability/issues/1"
    assert filed_events(db) == 1


def test_a_refused_connection_then_recovery(
    db: Database, make_items: MakeItems, run_id: int, due: date, clock: Clock
) -> None:
    down = make_items(github(closed_port_url()))
    item = down.add(run_id=run_id, what="Cache the token", owner="U0FIXER", due_on=due, actor="U0OWNER")
    assert item.backlog_state is BacklogState.PENDING and "ConnectError" in (item.backlog_error or "")
    clock.advance(minutes=5)
    with running(FakeGitHub()) as server:
        back = make_items(github(server.url))
        assert back.file_pending().filed == 1
        assert back.file_pending().filed == 0
        assert len(server.backend.issues) == 1
    assert filed_events(db) == 1


def test_two_replicas_file_a_pending_item_once(
    db: Database, make_items: MakeItems, run_id: int, due: date, clock: Clock
) -> None:
    with running(FakeGitHub()) as server:
        server.backend.fail_next(502)
        make_items(github(server.url)).add(run_id=run_id, what="Once", owner="U0FIXER", due_on=due, actor="U0OWNER")
        clock.advance(minutes=1)
        replicas = [make_items(github(server.url)) for _ in range(2)]
        barrier = threading.Barrier(2)
        filed: list[int] = []

        def replica(index: int) -> None:
            barrier.wait()
            filed.append(replicas[index].file_pending().filed)

        threads = [threading.Thread(target=replica, args=(index,)) for index in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(10)
        assert sorted(filed) == [0, 1]
        assert len(server.backend.issues) == 1
    assert filed_events(db) == 1


def test_a_bad_token_is_reported_without_the_secret(
    db: Database, make_items: MakeItems, run_id: int, due: date, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    with running(FakeGitHub()) as server:
        items = make_items(github(server.url, {"GITHUB_TOKEN": "wrong-secret-value"}))
        item = items.add(run_id=run_id, what="x", owner="U0FIXER", due_on=due, actor="U0OWNER")
    assert item.backlog_state is BacklogState.PENDING
    assert "HTTP 401" in (item.backlog_error or "") and "check the backlog settings" in (item.backlog_error or "")
    assert "wrong-secret-value" not in (item.backlog_error or "") and "wrong-secret-value" not in caplog.text


def test_a_missing_variable_keeps_the_item_pending(db: Database, make_items: MakeItems, run_id: int, due: date) -> None:
    with running(FakeGitHub()) as server:
        item = make_items(github(server.url, {})).add(
            run_id=run_id, what="x", owner="U0FIXER", due_on=due, actor="U0OWNER"
        )
        assert server.backend.calls == []
    assert "environment variable GITHUB_TOKEN is not set" in (item.backlog_error or "")


def test_no_backlog_configured_means_nothing_to_file(
    db: Database, make_items: MakeItems, run_id: int, due: date
) -> None:
    items = make_items(None)
    item = items.add(run_id=run_id, what="x", owner="U0FIXER", due_on=due, actor="U0OWNER")
    assert item.backlog_state is None and items.file_pending().filed == 0


@pytest.mark.parametrize(
    ("config", "says"),
    [
        ({"kind": "github", "repo": "acme/rel", "token": "ghp_literal"}, "must be an environment reference"),
        ({"kind": "github", "repo": "acme", "token": "${T}"}, "expected owner/name"),
        ({"kind": "jira", "site": "acme.atlassian.net", "project": "REL", "email": "a@b", "token": "${T}"}, "http(s)"),
        ({"kind": "jira", "site": "https://a.atlassian.net", "project": "rel", "email": "a@b", "token": "${T}"}, "key"),
        ({"kind": "webhook", "url": "https://h.example", "method": "PUT"}, "Extra inputs are not permitted"),
        ({"kind": "trello", "board": "x"}, "does not match any of the expected tags"),
    ],
)
def test_backlog_settings_are_checked_when_the_policy_loads(config: dict[str, Any], says: str) -> None:
    from bot.policy.models import Policy
    from bot.policy.service import load_policy

    base = load_policy().model_dump(mode="json")
    with pytest.raises(ValidationError) as caught:
        Policy.model_validate({**base, "backlog": config})
    assert says in str(caught.value)


def test_filing_can_be_left_to_the_periodic_job(db: Database, make_items: MakeItems, run_id: int, due: date) -> None:
    with running(FakeGitHub()) as server:
        items = make_items(github(server.url))
        item = items.add(run_id=run_id, what="Later", owner="U0FIXER", due_on=due, actor="U0OWNER", file_now=False)
        assert item.backlog_state is BacklogState.PENDING and server.backend.calls == []
        assert items.file_pending().filed == 1
        assert items.get(item.id).backlog_url == "https://github.com/acme/reliability/issues/1"


def test_the_owner_name_and_run_link_are_resolved_while_no_transaction_is_open(
    db: Database, clock: Clock, run_id: int, due: date
) -> None:
    got_through: list[bool] = []
    writers: list[threading.Thread] = []

    def touch_every_item() -> None:
        with db.transaction() as session:
            session.execute(update(ActionItem).values(what=ActionItem.what))

    def waiting_for_slack(answer: str) -> str:
        # Another writer must get through while we "ask Slack": a transaction held by the filing claim would
        # keep it out (SQLite: one write lock; PostgreSQL: the claimed item's row lock).
        writer = threading.Thread(target=touch_every_item)
        writers.append(writer)
        writer.start()
        writer.join(timeout=3)
        got_through.append(not writer.is_alive())
        return answer

    with running(FakeGitHub()) as server:
        items = ActionItems(
            db,
            backlog=github(server.url),
            zone=SYDNEY,
            clock=clock,
            name_of=lambda user: waiting_for_slack("Grace Hopper"),
            link_for=lambda run: waiting_for_slack(f"https://acme.slack.com/archives/C1/p{run}"),
        )
        item = items.add(run_id=run_id, what="Cache the share token", owner="U0FIXER", due_on=due, actor="U0OWNER")
        [issue] = server.backend.issues
    for writer in writers:
        writer.join(timeout=10)

    assert got_through == [True, True]
    assert item.backlog_state is BacklogState.FILED and "- Owner: Grace Hopper" in issue["body"]
