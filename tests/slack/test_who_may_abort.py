"""Who may abort and resume, from the outside: a server whose policy says ``abort: approvers`` refuses an
outsider's abort (command and button) and resume with a clear answer, changes nothing, and audits the refusal."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.fakeslack.server import FakeSlack

from .conftest import (
    OUTSIDER,
    POLICY,
    RELIABILITY,
    STAKEHOLDER_GROUP,
    STAKEHOLDERS,
    Bot,
    ChaosbotServer,
    wait_until,
)


@pytest.fixture
def strict_bot(tmp_path: Path, slack: FakeSlack) -> Iterator[Bot]:
    policy = tmp_path / "strict-policy.yml"
    policy.write_text(POLICY + "abort: approvers\n", encoding="utf-8")
    server = ChaosbotServer(
        "sqlite-abort-approvers",
        tmp_path,
        f"sqlite:///{tmp_path / 'chaosbot.db'}",
        slack,
        None,
        {"CHAOSBOT_POLICY": str(policy)},
    )
    server.start()
    slack.set_usergroup(STAKEHOLDER_GROUP, STAKEHOLDERS)
    bot = Bot(server, slack)
    try:
        yield bot
        bot.clean_up()
    finally:
        server.stop()


def refusals(bot: Bot) -> list[tuple[str, str]]:
    rows = bot.server.query("SELECT actor, action FROM audit_events WHERE action LIKE '%refused' ORDER BY seq")
    return [(str(actor), str(action)) for actor, action in rows]


def test_with_abort_approvers_an_outsider_is_refused_and_audited(strict_bot: Bot) -> None:
    bot = strict_bot
    run = bot.approved_run()
    bot.start(run)

    assert bot.command(f"abort {run.label} I want it off", OUTSIDER).status == 200
    assert "Only an approver can abort" in bot.ephemeral(OUTSIDER, "Only an approver", timeout=10)
    assert bot.click("run.abort", run, OUTSIDER).status == 200
    wait_until(lambda: len(refusals(bot)) == 2, timeout=10, what="both refusals audited")
    assert bot.server.run_state(run.id) == "running"
    assert refusals(bot) == [(OUTSIDER, "abort.refused"), (OUTSIDER, "abort.refused")]

    assert bot.command(f"abort {run.label} approver says stop", RELIABILITY).status == 200
    wait_until(lambda: bot.server.run_state(run.id) == "aborted", timeout=10, what="the approver's abort")

    assert bot.command("abort all drill", RELIABILITY).status == 200
    wait_until(lambda: bot.server.query("SELECT engaged FROM kill_switch")[0][0], what="the kill switch engaged")
    assert bot.command("resume", OUTSIDER).status == 200
    assert "Only an approver can resume" in bot.ephemeral(OUTSIDER, "can resume", timeout=10)
    assert refusals(bot)[-1] == (OUTSIDER, "killswitch.resume_refused")
    assert bot.server.query("SELECT engaged FROM kill_switch")[0][0]
