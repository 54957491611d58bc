"""The global kill switch: a lever that stops every start until an approver resumes."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.safety.models import KillSwitch
from storage.db import utcnow


def state(session: Session, *, for_update: bool = False) -> KillSwitch:
    query = select(KillSwitch).where(KillSwitch.id == 1)
    return session.execute(query.with_for_update() if for_update else query).scalar_one()


def set_engaged(session: Session, *, engaged: bool, actor: str, reason: str | None) -> bool:
    """Set the lever; returns False when it was already in that position."""
    lever = state(session, for_update=True)
    if lever.engaged == engaged:
        return False
    lever.engaged, lever.changed_by, lever.changed_at, lever.reason = engaged, actor, utcnow(), reason
    return True
