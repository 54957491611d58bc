"""Rows written straight into the tables, so a test controls every date and outcome of its runs."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy.orm import Session

from bot.actions.models import ActionItem
from bot.records.models import Outcome
from bot.reports.periods import parse_period
from bot.reports.summary import Summary, summarise
from bot.runs.models import Run
from storage.db import Database

SYDNEY = ZoneInfo("Australia/Sydney")
CATALOGUE = ["CE-01", "CE-02", "CE-03", "CE-04", "CE-05", "CE-06"]


def local(year: int, month: int, day: int, hour: int = 10, minute: int = 0) -> datetime:
    """A moment given in Sydney time, as UTC."""
    return datetime(year, month, day, hour, minute, tzinfo=SYDNEY).astimezone(UTC)


def add_run(
    session: Session,
    *,
    experiment: str,
    state: str,
    planned: datetime,
    ran: bool = True,
    owner: str = "U0OWNER",
    environment: str = "staging",
    ended_by: str | None = None,
    end_reason: str | None = None,
) -> int:
    run = Run(
        experiment_id=experiment,
        experiment={"id": experiment},
        experiment_hash="0" * 64,
        environment=environment,
        owner=owner,
        planned_start=planned,
        rollback_steps="revert",
        state=state,
        started_at=planned if ran else None,
        ended_at=planned if state in ("completed", "aborted", "failed") else None,
        ended_by=ended_by,
        end_reason=end_reason,
    )
    session.add(run)
    session.flush()
    return run.id


def add_outcome(
    session: Session,
    run_id: int,
    *,
    result: str,
    held: bool | None,
    recovery: float | None,
    rto: float,
    breach: str | None = None,
) -> None:
    session.add(
        Outcome(
            run_id=run_id,
            result=result,
            hypothesis_held=held,
            recovery_seconds=recovery,
            rto_seconds=rto,
            breach=breach,
            summary="",
        )
    )
    session.flush()


def add_item(
    session: Session,
    run_id: int,
    *,
    what: str,
    created: datetime,
    due: date,
    done: datetime | None = None,
    owner: str = "U0FIXER",
) -> int:
    item = ActionItem(
        run_id=run_id,
        what=what,
        owner=owner,
        due_on=due,
        status="done" if done else "open",
        version=1,
        created_by="U0OWNER",
        created_at=created,
        done_by=owner if done else None,
        done_at=done,
        backlog_attempts=0,
    )
    session.add(item)
    session.flush()
    return item.id


AFTER = local(2027, 1, 10)  # "now" for the seeded quarter: both periods are over


def summary_of(db: Database, period: str, **kwargs: Any) -> Summary:
    with db.transaction() as session:
        return summarise(session, parse_period(period), experiments=CATALOGUE, zone=SYDNEY, now=AFTER, **kwargs)
