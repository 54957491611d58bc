"""Scheduled summaries: posted exactly once with two replicas in two OS processes against one database, on
the first working day at the configured time; and the summary blocks pass the fake Slack's Block Kit checks."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import datetime
from pathlib import Path

import pytest
from sqlalchemy import select

from bot.audit import service as audit
from bot.audit.models import AuditEvent
from bot.schedule import firings
from storage.db import Database
from tests.fakeslack.identity import DEFAULT_CHANNEL_ID as CHANNEL
from tests.fakeslack.server import FakeSlack

ROOT = Path(__file__).resolve().parents[2]
# Thu 1 Oct 2026, 09:35 in Sydney: September's summary was due at 09:00, the third quarter's at 09:30.
NOW = datetime.fromisoformat("2026-10-01T09:35:00+10:00")


@pytest.fixture
def database_url(db: Database, request: pytest.FixtureRequest) -> str:
    return str(request.getfixturevalue("postgres_url")) if db.dialect == "postgresql" else db.url


def test_two_replicas_post_each_summary_once(db: Database, database_url: str, slack: FakeSlack) -> None:
    command = [sys.executable, "-m", "tests.learning.summary_worker", database_url, slack.url, CHANNEL]
    workers = [
        subprocess.Popen([*command, NOW.isoformat(), "--seconds", "3"], cwd=ROOT, stdout=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    outputs = [json.loads(worker.communicate(timeout=60)[0].strip().splitlines()[-1]) for worker in workers]
    assert all(worker.returncode == 0 for worker in workers)
    assert sorted(key for posted in outputs for key in posted) == ["2026-09", "2026-Q3"]

    texts = [str(c.params.get("text")) for c in slack.calls("chat.postMessage") if c.ok]
    assert sum("Chaos experiments, September 2026" in t for t in texts) == 1
    assert sum("quarterly update, Q3 2026" in t for t in texts) == 1
    quarterly = next(c for c in slack.calls("chat.postMessage") if "Q3 2026" in str(c.params.get("text")))
    (chart,) = slack.files()
    assert chart.thread_ts == quarterly.response["ts"] and chart.content is not None
    assert chart.content.startswith(b"\x89PNG")

    with db.transaction() as session:
        events = session.scalars(select(AuditEvent).where(AuditEvent.action == "summary.posted")).all()
        periods = sorted(str(json.loads(event.payload)["period"]) for event in events)
        assert audit.verify(session).ok
    assert periods == ["2026-09", "2026-Q3"]
    for kind, key in (("summary.monthly", "2026-09"), ("summary.quarterly", "2026-Q3")):
        firing = firings.get(db, kind=kind, key=key)
        assert firing is not None and firing.done_at is not None and firing.outcome == "done"
