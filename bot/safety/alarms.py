"""Revert-failure alarms: a fault that could not be reverted is raised again and again (every
``repeat_every``) until someone acknowledges it or the fault is reverted after all.

The state lives where every replica sees it: a run's alarm is outstanding while one of its fault records is
``failed`` and no ``alarm.acknowledged`` audit event came after the failure. Each reminder is itself an audit
event (``alarm.repeated``), written under the audit chain's head lock after checking the last one, so several
replicas sending reminders still send one per interval.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from bot.audit import service as audit
from bot.audit.models import AuditEvent, AuditHead
from bot.errors import IllegalTransition
from bot.records.models import FaultRecord, FaultRecordState
from bot.runs.models import Run
from bot.vocabulary import format_duration, run_label
from bot.words import Person, Words
from storage.db import Database, utcnow

ACKNOWLEDGED = "alarm.acknowledged"
REPEATED = "alarm.repeated"
REPEAT_EVERY = timedelta(minutes=2)


@dataclass(frozen=True)
class Alarm:
    run_id: int
    failed_faults: int
    rollback_steps: str


class RevertAlarms:
    def __init__(
        self,
        db: Database,
        *,
        repeat_every: timedelta = REPEAT_EVERY,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.db = db
        self.repeat_every = repeat_every
        self.clock = clock

    def outstanding(self) -> list[Alarm]:
        """Runs with a fault still failed and nobody's acknowledgement since."""
        with self.db.transaction() as session:
            return [alarm for run_id in _failed_runs(session) if (alarm := _alarm(session, run_id)) is not None]

    def due(self) -> list[tuple[Alarm, Words]]:
        """Claim the reminders due now (one per run per ``repeat_every`` across replicas) and say them."""
        claimed = []
        for alarm in self.outstanding():
            if self._claim(alarm.run_id):
                claimed.append((alarm, reminder(alarm, self.repeat_every)))
        return claimed

    def acknowledge(self, actor: str, run_id: int) -> Words:
        """Stop the reminders for ``run_id`` (anyone in the channel; audited); says what happened."""
        with self.db.transaction() as session:
            _lock_chain(session)
            if _alarm(session, run_id) is None:
                raise IllegalTransition(f"{run_label(run_id)} has no alarm waiting for an acknowledgement.")
            audit.append(session, actor=actor, action=ACKNOWLEDGED, run_id=run_id, at=self.clock())
        return Words.of(
            f":white_check_mark: {run_label(run_id)}'s revert alarm acknowledged by ",
            Person(actor),
            ": no more reminders. The fault is NOT reverted until someone rolls it back by hand.",
        )

    def _claim(self, run_id: int) -> bool:
        now = self.clock()
        with self.db.transaction() as session:
            _lock_chain(session)
            if _alarm(session, run_id) is None:
                return False
            last = _last(session, run_id, REPEATED)
            if last is not None and now - last < self.repeat_every:
                return False
            if last is None and now - _failed_since(session, run_id) < self.repeat_every:
                return False  # the first alert was just posted
            audit.append(session, actor="chaosbot", action=REPEATED, run_id=run_id, at=now)
            return True


def reminder(alarm: Alarm, every: timedelta) -> Words:
    return Words.of(
        f"REMINDER: {run_label(alarm.run_id)}'s fault is still NOT reverted and nobody has acknowledged it "
        f"(repeated every {format_duration(every)}). Roll it back by hand now, then press Acknowledge:\n"
        f"{alarm.rollback_steps}"
    )


def _lock_chain(session: Session) -> None:
    session.execute(select(AuditHead).where(AuditHead.id == 1).with_for_update()).scalar_one()


def _failed_runs(session: Session) -> list[int]:
    query = select(FaultRecord.run_id).where(FaultRecord.state == FaultRecordState.FAILED.value).distinct()
    return sorted(session.scalars(query))


def _failed_since(session: Session, run_id: int) -> datetime:
    """When the run's revert failed: the alert goes out just before the run's end is recorded."""
    run = session.get_one(Run, run_id)
    return run.ended_at or run.updated_at


def _last(session: Session, run_id: int, action: str) -> datetime | None:
    query = select(func.max(AuditEvent.at)).where(AuditEvent.run_id == run_id, AuditEvent.action == action)
    value = session.scalar(query)
    if value is None:
        return None
    return value if value.tzinfo is not None else value.replace(tzinfo=utcnow().tzinfo)


def _alarm(session: Session, run_id: int) -> Alarm | None:
    failed = session.scalar(
        select(func.count()).where(FaultRecord.run_id == run_id, FaultRecord.state == FaultRecordState.FAILED.value)
    )
    if not failed:
        return None
    acknowledged = _last(session, run_id, ACKNOWLEDGED)
    if acknowledged is not None and acknowledged >= _failed_since(session, run_id):
        return None
    run = session.get_one(Run, run_id)
    return Alarm(run_id, int(failed), run.rollback_steps)
