"""Claiming a firing once across replicas: the API every "do this once, at that moment" job uses.

A firing is identified by ``(kind, key)``: the kind names the job ("run.notice", "summary.monthly",
"retrospective.posted"), the key names the occasion ("run:42:2026-12-03T11:00:00+00:00", "2026-11").
Replicas race for it through the database only, so it works the same on SQLite and PostgreSQL:

    if claim(db, kind="summary.monthly", key="2026-11", due_at=due, holder=me, lease=timedelta(minutes=5), now=now):
        try:
            post_the_summary()
        except Exception as exc:
            failed(db, kind="summary.monthly", key="2026-11", holder=me, error=str(exc), retry_at=now + backoff)
        else:
            complete(db, kind="summary.monthly", key="2026-11", holder=me, now=clock())

or, for the same in one call, ``once(db, kind=…, key=…, due_at=…, holder=…, lease=…, now=…, action=post)``.

- ``claim`` inserts the row if it is missing, then takes it with one conditional UPDATE (not done, due,
  and nobody's lease or back-off running). The UPDATE's row count says who won: exactly one replica.
- The winner holds it for ``lease``. If it dies before ``complete``, another replica claims it after the
  lease. So the lease must be longer than the work; the work should also be safe to repeat in that
  rare case (a run's start is: the second start finds the run already running).
- ``failed`` releases it until ``retry_at`` (the back-off); the next claim after that retries it.
- ``complete`` and ``close`` finish it for good (``outcome`` records how: "done", "missed", …); they only
  count when the caller still holds the claim, so a holder whose lease ran out cannot finish a firing
  another replica took over.

Every function is its own short transaction: never hold one open while doing the work.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session

from bot.schedule.models import Firing
from storage.db import Database, insert_ignoring, rowcount

MAX_ERROR = 2000


@dataclass(frozen=True)
class Backoff:
    """How long a failed firing waits before its next try: doubling from ``first`` up to ``longest``."""

    first: timedelta = timedelta(seconds=10)
    longest: timedelta = timedelta(minutes=5)

    def after(self, attempts: int) -> timedelta:
        wait: timedelta = self.first * (2 ** min(max(attempts - 1, 0), 20))
        return min(wait, self.longest)


DEFAULT_BACKOFF = Backoff()


def claim(
    db: Database,
    *,
    kind: str,
    key: str,
    due_at: datetime,
    holder: str,
    lease: timedelta,
    now: datetime,
    run_id: int | None = None,
) -> bool:
    """Take the firing ``(kind, key)`` for ``holder`` until ``now + lease``; True for exactly one claimer.

    False when it is not due yet, already done, or held (or backing off) by anyone, this holder included.
    """
    with db.transaction() as session:
        _insert_if_missing(session, kind=kind, key=key, due_at=due_at, run_id=run_id, now=now)
        result = session.execute(
            update(Firing)
            .where(
                Firing.kind == kind,
                Firing.key == key,
                Firing.done_at.is_(None),
                Firing.due_at <= now,
                or_(Firing.claimed_until.is_(None), Firing.claimed_until < now),
            )
            .values(claimed_by=holder, claimed_until=now + lease, attempts=Firing.attempts + 1)
            .execution_options(synchronize_session=False)
        )
        return rowcount(result) == 1


def complete(db: Database, *, kind: str, key: str, holder: str, now: datetime, outcome: str = "done") -> bool:
    """Finish a firing this holder claimed. False when the claim was lost (the lease ran out and another took it)."""
    return close(db, kind=kind, key=key, holder=holder, now=now, outcome=outcome)


def close(
    db: Database, *, kind: str, key: str, holder: str, now: datetime, outcome: str, error: str | None = None
) -> bool:
    """Finish a firing for good with ``outcome`` (``done``, ``missed``, ``obsolete``…), if ``holder`` holds it."""
    values: dict[str, Any] = {"done_at": now, "outcome": outcome[:64], "claimed_until": None}
    if error is not None:
        values["last_error"] = error[:MAX_ERROR]
    with db.transaction() as session:
        result = session.execute(
            update(Firing)
            .where(Firing.kind == kind, Firing.key == key, Firing.claimed_by == holder, Firing.done_at.is_(None))
            .values(**values)
            .execution_options(synchronize_session=False)
        )
        return rowcount(result) == 1


def failed(db: Database, *, kind: str, key: str, holder: str, error: str, retry_at: datetime) -> bool:
    """Give a claimed firing back after a failure; any replica may claim it again from ``retry_at``."""
    with db.transaction() as session:
        result = session.execute(
            update(Firing)
            .where(Firing.kind == kind, Firing.key == key, Firing.claimed_by == holder, Firing.done_at.is_(None))
            .values(claimed_until=retry_at, last_error=error[:MAX_ERROR])
            .execution_options(synchronize_session=False)
        )
        return rowcount(result) == 1


def get(db: Database, *, kind: str, key: str) -> Firing | None:
    with db.transaction() as session:
        return session.scalar(select(Firing).where(Firing.kind == kind, Firing.key == key))


def done_keys(db: Database, *, kind: str, keys: list[str]) -> set[str]:
    """Which of ``keys`` are already finished (so a tick does not write for them again)."""
    if not keys:
        return set()
    with db.transaction() as session:
        rows = session.scalars(
            select(Firing.key).where(Firing.kind == kind, Firing.key.in_(keys), Firing.done_at.is_not(None))
        )
        return set(rows)


def once(
    db: Database,
    *,
    kind: str,
    key: str,
    due_at: datetime,
    holder: str,
    lease: timedelta,
    now: datetime,
    action: Callable[[], object],
    backoff: Backoff = DEFAULT_BACKOFF,
    run_id: int | None = None,
) -> bool:
    """Claim, run ``action``, complete; on an exception mark it failed (retried after the back-off) and re-raise.

    True when this call did the work; False when it was not this replica's to do.
    """
    if not claim(db, kind=kind, key=key, due_at=due_at, holder=holder, lease=lease, now=now, run_id=run_id):
        return False
    try:
        action()
    except Exception as exc:
        attempts = _attempts(db, kind=kind, key=key)
        failed(db, kind=kind, key=key, holder=holder, error=error_text(exc), retry_at=now + backoff.after(attempts))
        raise
    complete(db, kind=kind, key=key, holder=holder, now=now)
    return True


def error_text(exc: BaseException) -> str:
    """An exception as stored with a failed firing: its type, and its message when it has one."""
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _attempts(db: Database, *, kind: str, key: str) -> int:
    firing = get(db, kind=kind, key=key)
    return firing.attempts if firing else 1


def _insert_if_missing(
    session: Session, *, kind: str, key: str, due_at: datetime, run_id: int | None, now: datetime
) -> None:
    values = {"kind": kind, "key": key, "due_at": due_at, "run_id": run_id, "attempts": 0, "created_at": now}
    insert_ignoring(session, Firing, values)
