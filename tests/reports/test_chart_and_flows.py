from __future__ import annotations

import json
import struct

import pytest
from sqlalchemy import select

from bot.audit.models import AuditEvent
from bot.audit.service import verify
from bot.errors import InvalidInput
from bot.reports.chart import draw
from bot.reports.config import Reporting
from bot.reports.flows import Reports, record_posted
from bot.reports.periods import Period
from storage.db import Database
from tests.reports.seed import AFTER, CATALOGUE, SYDNEY, local, summary_of

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def test_the_quarters_trend_chart_is_a_png_of_its_three_months(db: Database, seeded: dict[str, int]) -> None:
    chart = draw(summary_of(db, "2026-Q4"))
    assert chart.png.startswith(PNG_SIGNATURE)
    width, height = struct.unpack(">II", chart.png[16:24])  # the IHDR chunk
    assert (width, height) == (770, 374)
    assert chart.months == ("2026-10", "2026-11", "2026-12")
    assert chart.drawn["completed"] == (1, 2, 1) and chart.drawn["aborted"] == (1, 3, 1)
    assert chart.drawn["refuted"] == (1, 1, 1) and chart.drawn["actions_opened"] == (2, 3, 1)
    with pytest.raises(ValueError, match="only a quarterly summary"):
        draw(summary_of(db, "2026-11"))


def test_reports_default_to_the_current_month_and_render(db: Database, seeded: dict[str, int]) -> None:
    reports = Reports(db, experiments=CATALOGUE, reporting=Reporting(), zone=SYDNEY, clock=lambda: AFTER)
    assert reports.period(None) == reports.period(" ") == Period.month(2027, 1)
    assert reports.period("2026-Q4") == Period.quarter(2026, 4)
    with pytest.raises(InvalidInput):
        reports.period("last month")
    assert json.loads(reports.text(Period.month(2026, 11), "json"))["runs_total"] == 8
    assert reports.text(Period.quarter(2026, 4)).startswith("# Chaos experiments: quarterly update, Q4 2026")


def test_due_summaries_and_their_audit_record(db: Database) -> None:
    reports = Reports(
        db, experiments=CATALOGUE, reporting=Reporting(), zone=SYDNEY, clock=lambda: local(2027, 1, 4, 9, 45)
    )
    assert [(due.kind, due.key) for due in reports.due()] == [
        ("summary.monthly", "2026-12"),
        ("summary.quarterly", "2026-Q4"),
    ]
    with db.transaction() as session:
        record_posted(session, period=Period.quarter(2026, 4), channel="C1", message_ts="1.2", at=AFTER)
    with db.transaction() as session:
        event = session.scalars(select(AuditEvent)).one()
        assert (event.action, event.actor) == ("summary.posted", "chaosbot")
        assert json.loads(event.payload) == {"period": "2026-Q4", "kind": "quarter", "channel": "C1", "ts": "1.2"}
        assert verify(session).ok
