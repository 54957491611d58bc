"""The summaries are computed by the database: the number of statements does not grow with the runs, and
the quarterly update never fetches the period's runs one by one."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date, timedelta
from typing import Any

from sqlalchemy import event

from bot.reports.periods import parse_period
from bot.reports.summary import summarise
from storage.db import Database
from tests.reports.seed import AFTER, CATALOGUE, SYDNEY, add_item, add_outcome, add_run, local


def seed(db: Database, runs: int) -> None:
    with db.transaction() as session:
        for index in range(runs):
            planned = local(2026, 10, 1) + timedelta(hours=20 * index)
            state = ("completed", "aborted", "failed")[index % 3]
            run_id = add_run(session, experiment=CATALOGUE[index % 5], state=state, planned=planned)
            held = (True, False, None)[index % 3]
            breach = "error rate 9% > 5%" if held is False else None
            add_outcome(session, run_id, result=state, held=held, recovery=10.0 + index, rto=60, breach=breach)
            if held is False:
                add_item(session, run_id, what=f"fix {index}", created=planned, due=date(2027, 2, 1))


@contextmanager
def statements(db: Database) -> Iterator[list[str]]:
    seen: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if statement.lstrip().upper().startswith("SELECT") or statement.lstrip().upper().startswith("WITH"):
            seen.append(statement)

    event.listen(db.engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(db.engine, "before_cursor_execute", record)


def count_statements(db: Database, period: str) -> tuple[int, int]:
    with statements(db) as seen, db.transaction() as session:
        summary = summarise(session, parse_period(period), experiments=CATALOGUE, zone=SYDNEY, now=AFTER)
    return len(seen), summary.runs_total


def test_the_statements_do_not_grow_with_the_runs(db: Database) -> None:
    seed(db, 9)
    few = count_statements(db, "2026-Q4"), count_statements(db, "2026-10")
    seed(db, 90)
    many = count_statements(db, "2026-Q4"), count_statements(db, "2026-10")
    assert [f[1] for f in few] == [9, 9] and many[0][1] == 99 and many[1][1] > 9
    assert [f[0] for f in few] == [m[0] for m in many]
    # A quarter: counts, reasons, worst recovery, action items, not run (1 each), trend (3 per month), learnings (3).
    assert many[0][0] == 17
