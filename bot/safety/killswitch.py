"""The global kill switch: a lever that stops every start until an approver resumes.

``state`` and ``set_engaged`` work inside the caller's transaction (``RunTransitions.begin`` reads the lever in the
start's own transaction); ``KillSwitchLever`` is the front the engine, the interface and the console pull."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.audit import service as audit
from bot.policy.directory import RoleDirectory
from bot.policy.models import Policy
from bot.safety import permissions
from bot.safety.models import KillSwitch
from storage.db import Database, utcnow


class KillSwitchLever:
    """Engage, release and read the kill switch, and say who may pull the brakes (abort or resume)."""

    def __init__(self, db: Database, policy: Policy, roles: RoleDirectory) -> None:
        self.db = db
        self.policy = policy
        self.roles = roles

    def engage(self, actor: str, reason: str) -> bool:
        """Stop every start; False when it was already engaged. Audited."""
        with self.db.transaction() as session:
            changed = set_engaged(session, engaged=True, actor=actor, reason=reason or None)
            if changed:
                audit.append(session, actor=actor, action="killswitch.engaged", payload={"reason": reason})
            return changed

    def release(self, actor: str) -> bool:
        """Let starts happen again (approvers only: ``NotPermitted``, audited); False when it was not engaged."""
        permissions.require_may_resume(self.db, self.roles, actor)
        with self.db.transaction() as session:
            changed = set_engaged(session, engaged=False, actor=actor, reason=None)
            if changed:
                audit.append(session, actor=actor, action="killswitch.released")
            return changed

    def engaged(self) -> bool:
        with self.db.transaction() as session:
            return state(session).engaged

    def require_may_abort(self, actor: str, run_id: int | None = None) -> None:
        """Refuse (``NotPermitted``, audited) when the policy's ``abort`` rule keeps ``actor`` from aborting."""
        permissions.require_may_abort(self.db, self.policy, self.roles, actor, run_id=run_id)


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
