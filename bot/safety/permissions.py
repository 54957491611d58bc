"""Who may pull the brakes: abort a run or the kill switch (policy ``abort: anyone | approvers``), and release
the kill switch (``resume``: approvers only). Every refusal is audited, so a team can see who tried.

An abort is never refused for lack of information: when the role directory cannot be read, the abort goes
ahead (reverting a fault makes nothing worse); a resume, which lets faults start again, is refused instead.
"""

from __future__ import annotations

import logging

from sqlalchemy.exc import SQLAlchemyError

from bot.audit import service as audit
from bot.errors import NotPermitted, RolesUnavailable
from bot.policy.directory import RoleDirectory
from bot.policy.models import AbortRule, Policy
from storage.db import Database

log = logging.getLogger(__name__)

ABORT_REFUSED = "abort.refused"
RESUME_REFUSED = "killswitch.resume_refused"
ONLY_APPROVERS_ABORT = "Only an approver can abort here (the policy says `abort: approvers`)."
ONLY_APPROVERS_RESUME = "Only an approver can resume after the global kill switch."


def require_may_abort(
    db: Database, policy: Policy, roles: RoleDirectory, actor: str, *, run_id: int | None = None
) -> None:
    """Raise ``NotPermitted`` (and audit it) when the policy keeps ``actor`` from aborting."""
    if policy.abort is AbortRule.ANYONE:
        return
    try:
        if roles.is_approver(actor):
            return
    except RolesUnavailable:
        log.warning("roles unreadable: letting an abort through rather than keeping a fault on")
        return
    record_refusal(db, actor, ABORT_REFUSED, run_id=run_id, rule=policy.abort.value)
    raise NotPermitted(ONLY_APPROVERS_ABORT)


def require_may_resume(db: Database, roles: RoleDirectory, actor: str) -> None:
    """Raise ``NotPermitted`` (and audit it) unless ``actor`` holds an approver role."""
    if not roles.is_approver(actor):
        record_refusal(db, actor, RESUME_REFUSED, rule="approvers")
        raise NotPermitted(ONLY_APPROVERS_RESUME)


def record_refusal(db: Database, actor: str, action: str, *, run_id: int | None = None, rule: str) -> None:
    """Audit a refused request; a database outage loses this note (logged) rather than delay the answer."""
    try:
        with db.transaction() as session:
            audit.append(session, actor=actor, action=action, run_id=run_id, payload={"rule": rule})
    except SQLAlchemyError:
        log.warning("could not audit a refused %s by %s", action, actor, exc_info=True)
