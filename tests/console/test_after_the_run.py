"""After the run in ``chaosbot shell``: the retrospective in the run's thread with its chart written to disk,
Add action item through its form, ``/chaos actions`` with Done, ``/chaos report`` for a month and a quarter."""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

import pytest

from tests.console.test_shell import after, fresh_db, run_shell

__all__ = ["fresh_db"]  # the fixture, shared with the shell's own tests

DUE = (date.today() + timedelta(days=30)).isoformat()
SCRIPT = """\
/chaos plan CE-01
submit
as rita
click Approve RUN-1
as sam
click Approve RUN-1
as stella
click Approve RUN-1
as oliver
/chaos start RUN-1 --dry-run --for 2s
wait RUN-1
click Add action item
set what Alert when the cache pauses
set owner rita
set due 2001-01-01
submit
set due {due}
submit
/chaos actions
as sam
click Done
as rita
click Done
/chaos actions mine
/chaos report
/chaos report 2026-Q4
/chaos report 2026-13
quit
"""


@pytest.fixture
def charts(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("CHAOSBOT_SPOOL_DIR", str(tmp_path / "data" / "spool"))
    return tmp_path / "data" / "charts"


def test_retrospective_action_items_and_reports_in_the_shell(fresh_db: Path, charts: Path) -> None:
    transcript = run_shell(SCRIPT.format(due=DUE))
    assert "Traceback" not in transcript and "Sorry, that failed" not in transcript

    waited = after(transcript, "oliver> wait RUN-1")
    retro = waited.split("RUN-1 is completed.")[0]
    assert "↳ RUN-1 thread: Retrospective · RUN-1 · CE-01" in retro
    assert "Hypothesis not tested." in retro and "Timeline (AE" in retro
    chart = charts / "RUN-1-retrospective.png"
    assert f"RUN-1 thread: 📊 RUN-1 CE-01: stop conditions over time: {chart}" in retro
    assert chart.read_bytes().startswith(b"\x89PNG")
    assert "RUN-1 (CE-01, staging) completed: hypothesis not tested." in retro  # the channel's line

    form = after(transcript, "oliver> click Add action item")
    assert "┌ Add action item" in form and "(2) Owner [owner]: —" in form
    assert "is in the past" in form.split(f"set due {DUE}")[0]  # checked inside the ack, shown on the field
    added = after(form, f"oliver [Add action item]> set due {DUE}")
    assert "RUN-1 thread: Action item AI-1 added by @oliver: Alert when the cache pauses (owner @rita" in added

    listed = after(transcript, "oliver> /chaos actions")
    assert "AI-1 Alert when the cache pauses" in listed and "[1] Done" in listed
    refused = after(transcript, "sam> click Done").split("rita>")[0]
    assert "Only AI-1's owner @rita" in refused  # sam neither owns it, raised it nor owns the run
    done = after(transcript, "rita> click Done").split("rita> /chaos actions mine")[0]
    assert "AI-1 is done: Alert when the cache pauses" in done
    assert "RUN-1 thread: Action item AI-1 marked done by @rita." in done
    assert "Your open action items: none." in after(transcript, "rita> /chaos actions mine")

    month = after(transcript, "rita> /chaos report").split("rita> /chaos report 2026-Q4")[0]
    assert "Chaos experiments, " in month and "Runs: 1 (1 completed)" in month
    assert "Action items: 1 opened and 1 done in the period" in month
    assert "• RUN-1 CE-01 staging" in month
    quarter = after(transcript, "rita> /chaos report 2026-Q4").split("rita> /chaos report 2026-13")[0]
    assert "Chaos experiments: quarterly update, Q4 2026" in quarter and "Key learnings" in quarter
    assert (charts / "chaos-2026-Q4-trend.png").read_bytes().startswith(b"\x89PNG")
    assert "a month is 01 to 12" in after(transcript, "rita> /chaos report 2026-13")
