"""Database access for action items. State changes are conditional UPDATEs, like runs' ``transition``."""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import case, func, select, update
from sqlalchemy.orm import Session

from bot.actions.models import ActionItem, BacklogState, ItemStatus
from bot.errors import NotFound
from storage.db import StaleRow, rowcount


class StaleItem(StaleRow):
    """Someone changed the item between our read and our write; the flow re-reads and decides again."""


def get(session: Session, *, item_id: int) -> ActionItem:
    item = session.get(ActionItem, item_id, populate_existing=True)
    if item is None:
        raise NotFound(f"There is no action item AI-{item_id}.")
    return item


def open_items(session: Session, *, owner: str | None = None, limit: int = 100) -> list[ActionItem]:
    """Open items, soonest due first: overdue ones come first because their due date is the earliest."""
    query = (
        select(ActionItem)
        .where(ActionItem.status == ItemStatus.OPEN.value)
        .order_by(ActionItem.due_on, ActionItem.id)
        .limit(limit)
    )
    if owner is not None:
        query = query.where(ActionItem.owner == owner)
    return list(session.scalars(query))


def open_counts(session: Session, *, today: date, owner: str | None = None) -> tuple[int, int]:
    """How many items are open, and how many of them are overdue: counted in SQL, never from a capped list."""
    overdue = func.sum(case((ActionItem.due_on < today, 1), else_=0))
    query = select(func.count(), overdue).where(ActionItem.status == ItemStatus.OPEN.value)
    if owner is not None:
        query = query.where(ActionItem.owner == owner)
    total, late = session.execute(query).one()
    return int(total), int(late or 0)


def of_run(session: Session, *, run_id: int) -> list[ActionItem]:
    return list(session.scalars(select(ActionItem).where(ActionItem.run_id == run_id).order_by(ActionItem.id)))


def counts_by_run(session: Session, *, run_ids: list[int]) -> dict[int, tuple[int, int]]:
    """(action items, of which open) per run, for the export of runs; runs without items are absent."""
    if not run_ids:
        return {}
    is_open = case((ActionItem.status == ItemStatus.OPEN.value, 1), else_=0)
    rows = session.execute(
        select(ActionItem.run_id, func.count(), func.sum(is_open))
        .where(ActionItem.run_id.in_(run_ids))
        .group_by(ActionItem.run_id)
    )
    return {run_id: (int(total), int(still_open or 0)) for run_id, total, still_open in rows}


def mark_done(session: Session, *, item: ActionItem, by: str, at: datetime) -> None:
    changed = session.execute(
        update(ActionItem)
        .where(
            ActionItem.id == item.id,
            ActionItem.version == item.version,
            ActionItem.status == ItemStatus.OPEN.value,
        )
        .values(status=ItemStatus.DONE.value, done_by=by, done_at=at, version=item.version + 1)
        .execution_options(synchronize_session=False)
    )
    if rowcount(changed) != 1:
        raise StaleItem(item.id)


def due_for_filing(session: Session, *, now: datetime, limit: int) -> list[tuple[int, int]]:
    """(item id, attempts so far) of the items waiting for the backlog whose next try is due."""
    rows = session.execute(
        select(ActionItem.id, ActionItem.backlog_attempts)
        .where(
            ActionItem.backlog_state == BacklogState.PENDING.value,
            (ActionItem.backlog_next_at.is_(None)) | (ActionItem.backlog_next_at <= now),
        )
        .order_by(ActionItem.backlog_next_at, ActionItem.id)
        .limit(limit)
    )
    return [(row[0], row[1]) for row in rows]


def claim_filing(session: Session, *, item_id: int, attempts: int, now: datetime, until: datetime) -> bool:
    """Take the next filing attempt of one item; False when another replica took it first.

    The attempt count is the claim token: whoever moves it from ``attempts`` to ``attempts + 1`` files.
    ``until`` keeps the item out of everyone's hands while the call is in flight (and after a crash).
    """
    changed = session.execute(
        update(ActionItem)
        .where(
            ActionItem.id == item_id,
            ActionItem.backlog_state == BacklogState.PENDING.value,
            ActionItem.backlog_attempts == attempts,
            (ActionItem.backlog_next_at.is_(None)) | (ActionItem.backlog_next_at <= now),
        )
        .values(backlog_attempts=attempts + 1, backlog_next_at=until)
        .execution_options(synchronize_session=False)
    )
    return rowcount(changed) == 1


def record_filed(session: Session, *, item_id: int, attempt: int, url: str | None, key: str | None) -> bool:
    changed = session.execute(
        update(ActionItem)
        .where(
            ActionItem.id == item_id,
            ActionItem.backlog_state == BacklogState.PENDING.value,
            ActionItem.backlog_attempts == attempt,
        )
        .values(
            backlog_state=BacklogState.FILED.value,
            backlog_url=url,
            backlog_key=key,
            backlog_next_at=None,
            backlog_last_error=None,
        )
        .execution_options(synchronize_session=False)
    )
    return rowcount(changed) == 1


def record_failure(session: Session, *, item_id: int, attempt: int, error: str, retry_at: datetime) -> None:
    session.execute(
        update(ActionItem)
        .where(ActionItem.id == item_id, ActionItem.backlog_attempts == attempt)
        .values(backlog_last_error=error[:1000], backlog_next_at=retry_at)
        .execution_options(synchronize_session=False)
    )


def is_overdue(item: ActionItem, today: date) -> bool:
    return item.item_status is ItemStatus.OPEN and item.due_on < today
