"""``chaosbot report run|month|quarter`` and the export's after-the-run columns, on both databases."""

from __future__ import annotations

import json
from datetime import timedelta
from zoneinfo import ZoneInfo

import pytest

from bot.actions.flows import ActionItems
from bot.cli import main
from bot.reports.periods import Period, PeriodKind
from bot.runs.core import RunCore
from storage.db import Database
from tests.conftest import Clock
from tests.retro import stories

ZONE = ZoneInfo("Australia/Sydney")


@pytest.fixture
def cli_env(db: Database, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    url = request.getfixturevalue("postgres_url") if db.dialect == "postgresql" else db.url
    monkeypatch.setenv("DATABASE_URL", url)
    monkeypatch.setenv("CHAOSBOT_TIMEZONE", ZONE.key)
    for name in ("CHAOSBOT_CATALOGUE", "CHAOSBOT_POLICY", "REDIS_URL"):
        monkeypatch.delenv(name, raising=False)


def history(core: RunCore, clock: Clock) -> tuple[int, int]:
    """A held run with one action item (done) and one open, and a refuted run that breached."""
    held = stories.held(core, clock).run_id
    breached = stories.breached(core, clock).run_id
    items = ActionItems(core.db, backlog=None, zone=ZONE, clock=clock)
    due = clock().astimezone(ZONE).date() + timedelta(days=7)
    first = items.add(run_id=held, what="Page on cache pauses", owner="rita", due_on=due, actor=stories.OWNER)
    items.add(run_id=held, what="Runbook: unpause by hand", owner="sam", due_on=due, actor=stories.OWNER)
    items.done(item_id=first.id, actor="rita")
    return held, breached


@pytest.mark.usefixtures("cli_env")
def test_report_run_prints_the_retrospective_as_markdown(
    core: RunCore, clock: Clock, capsys: pytest.CaptureFixture[str]
) -> None:
    held, breached = history(core, clock)
    assert main(["report", "run", f"RUN-{breached}", "--format", "md"]) == 0
    text = capsys.readouterr().out
    assert text.startswith(f"# Retrospective: RUN-{breached} · CE-01")
    assert "**Hypothesis refuted.**" in text and "812" in text
    assert main(["report", "run", f"RUN-{held}"]) == 0
    held_text = capsys.readouterr().out
    assert "AI-1 Page on cache pauses" in held_text and "done" in held_text
    assert "AI-2 Runbook: unpause by hand" in held_text
    assert main(["report", "run", "RUN-999"]) == 1
    assert "RUN-999" in capsys.readouterr().err
    assert main(["report", "run", "yesterday"]) == 2


@pytest.mark.usefixtures("cli_env")
def test_report_month_and_quarter_in_each_format(
    core: RunCore, clock: Clock, capsys: pytest.CaptureFixture[str]
) -> None:
    history(core, clock)
    month = Period.containing(clock(), ZONE, PeriodKind.MONTH)
    quarter = Period.containing(clock(), ZONE, PeriodKind.QUARTER)

    assert main(["report", "month", month.label, "--format", "json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["runs_total"] == 2
    assert summary["hypotheses"] == {"held": 1, "refuted": 1, "not_tested": 0}
    assert (summary["actions"]["opened"], summary["actions"]["done"]) == (2, 1)

    assert main(["report", "month", month.label, "--format", "csv"]) == 0
    assert "hypotheses,refuted,1," in capsys.readouterr().out
    assert main(["report", "quarter", quarter.label]) == 0
    markdown = capsys.readouterr().out
    assert markdown.startswith(f"# Chaos experiments: quarterly update, {quarter.title}")
    assert "## Key learnings" in markdown and "**CE-01**: hypothesis refuted once" in markdown

    assert main(["report", "month", quarter.label]) == 2  # a quarter typed where a month was asked for
    assert f"chaosbot report quarter {quarter.label}" in capsys.readouterr().err
    assert main(["report", "month", "2026-13"]) == 2
    assert "a month is 01 to 12" in capsys.readouterr().err


@pytest.mark.usefixtures("cli_env")
def test_export_runs_carries_outcome_verdict_recovery_and_action_items(
    core: RunCore, clock: Clock, capsys: pytest.CaptureFixture[str]
) -> None:
    held, breached = history(core, clock)
    slow = stories.slow_recovery(core, clock).run_id
    assert main(["export", "runs"]) == 0
    rows = {row["run"]: row for row in map(json.loads, capsys.readouterr().out.splitlines())}
    first, second, third = rows[f"RUN-{held}"], rows[f"RUN-{breached}"], rows[f"RUN-{slow}"]
    assert (first["outcome"], first["verdict"], first["recovery_vs_rto"]) == ("completed", "held", "met by 290.0 s")
    assert (first["action_items"], first["action_items_open"]) == (2, 1)
    assert (second["outcome"], second["verdict"], second["recovery_vs_rto"]) == ("aborted", "refuted", None)
    assert (second["action_items"], second["action_items_open"]) == (0, 0)
    assert third["verdict"] == "refuted" and str(third["recovery_vs_rto"]).startswith("missed by")
