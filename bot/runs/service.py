"""Database access for runs. Every state change goes through ``transition``, which checks the version."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from bot.errors import IllegalTransition, NotFound
from bot.policy.models import Role
from bot.runs.models import ALLOWED, Run, RunState
from bot.vocabulary import parse_run_label, run_label
from storage.db import StaleRow, rowcount, utcnow


class StaleRun(StaleRow):
    """Someone changed the run between our read and our write; the flow re-reads and decides again."""


def parse_run_id(text: str) -> int:
    """``RUN-42`` (or ``42``) → 42; ``NotFound`` telling the person what a run id looks like."""
    run_id = parse_run_label(text)
    if run_id is None:
        raise NotFound(f"{text!r} is not a run id; run ids look like {run_label(42)}.")
    return run_id


def get(session: Session, *, run_id: int) -> Run:
    run = session.get(Run, run_id, populate_existing=True)
    if run is None:
        raise NotFound(f"There is no {run_label(run_id)}.")
    return run


def find(
    session: Session,
    *,
    states: Iterable[RunState] | None = None,
    limit: int | None = 50,
    offset: int = 0,
    soonest_first: bool = False,
) -> list[Run]:
    """Runs newest first (or by planned start, soonest first), ``limit`` of them from ``offset`` (None: all)."""
    order = (Run.planned_start, Run.id) if soonest_first else (Run.id.desc(),)
    query = select(Run).order_by(*order).offset(offset).limit(limit)
    if states is not None:
        query = query.where(Run.state.in_([state.value for state in states]))
    return list(session.scalars(query))


def count(session: Session, *, states: Iterable[RunState]) -> int:
    """How many runs are in ``states``: counted in SQL, never from a capped list."""
    query = select(func.count()).select_from(Run).where(Run.state.in_([state.value for state in states]))
    return int(session.scalar(query) or 0)


def approvals_by_role(run: Run) -> dict[Role, str]:
    return {Role(approval.role): approval.user_id for approval in run.approvals}


def transition(session: Session, *, run: Run, to: RunState, **changes: Any) -> None:
    """Move ``run`` to ``to`` if it is still at the version we read; otherwise raise ``StaleRun``.

    The conditional UPDATE is what makes two simultaneous clicks give exactly one transition.
    """
    current = run.run_state
    if to not in ALLOWED.get(current, frozenset()):
        raise IllegalTransition(f"{run.label} is {current.value}; it cannot become {to.value}.")
    values = {"state": to.value, "version": run.version + 1, "updated_at": utcnow(), **changes}
    result = session.execute(
        update(Run)
        .where(Run.id == run.id, Run.version == run.version)
        .values(**values)
        .execution_options(synchronize_session=False)
    )
    if rowcount(result) != 1:
        raise StaleRun(run.label)
    session.refresh(run)
