"""A revert that failed is raised again every interval, once across replicas, until someone acknowledges it
(audited) or the fault is reverted after all; on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from sqlalchemy import select, update

from bot.audit import service as audit
from bot.audit.models import AuditEvent
from bot.errors import IllegalTransition
from bot.records.models import FaultRecord, FaultRecordState
from bot.safety.alarms import RevertAlarms
from storage.db import utcnow
from tests.engine.conftest import OWNER, World

EVERY = timedelta(minutes=2)


class Later:
    """utcnow() moved forward by hand: how time passes between reminders."""

    def __init__(self) -> None:
        self.offset = timedelta()

    def __call__(self) -> datetime:
        return utcnow() + self.offset


def failed_revert(world: World) -> int:
    engine = world.engine(revert_attempts=2)
    run_id = world.approved()
    engine.start(OWNER, run_id)
    world.lab.revert_status = 500
    assert not engine.abort(OWNER, run_id, "stop").reverted
    return run_id


def actions(world: World, run_id: int) -> list[tuple[str, str]]:
    with world.db.transaction() as session:
        events = session.scalars(select(AuditEvent).where(AuditEvent.run_id == run_id).order_by(AuditEvent.seq))
        return [(e.actor, e.action) for e in events if e.action.startswith("alarm.")]


def test_reminders_repeat_once_per_interval_across_replicas_until_acknowledged(world: World) -> None:
    run_id = failed_revert(world)
    clock = Later()
    one, other = (
        RevertAlarms(world.db, repeat_every=EVERY, clock=clock),
        RevertAlarms(world.db, repeat_every=EVERY, clock=clock),
    )

    assert [a.run_id for a in one.outstanding()] == [run_id]
    assert one.due() == []  # the first alert has just gone out
    clock.offset = EVERY + timedelta(seconds=1)
    [(alarm, words)] = one.due()
    assert alarm.run_id == run_id and "still NOT reverted" in str(words) and "Switch the lab toggle off" in str(words)
    assert other.due() == []  # the other replica finds this interval's reminder sent
    clock.offset = 2 * EVERY + timedelta(seconds=2)
    assert len(other.due()) == 1

    said = one.acknowledge("olga", run_id)

    assert "acknowledged by" in str(said)
    assert one.outstanding() == []
    clock.offset = 5 * EVERY
    assert one.due() == [] and other.due() == []
    assert actions(world, run_id) == [
        ("chaosbot", "alarm.repeated"),
        ("chaosbot", "alarm.repeated"),
        ("olga", "alarm.acknowledged"),
    ]
    with pytest.raises(IllegalTransition, match="no alarm"):
        one.acknowledge("olga", run_id)
    with world.db.transaction() as session:
        assert audit.verify(session).ok


def test_a_fault_reverted_after_all_stops_the_reminders(world: World) -> None:
    run_id = failed_revert(world)
    clock = Later()
    alarms = RevertAlarms(world.db, repeat_every=EVERY, clock=clock)

    with world.db.transaction() as session:
        session.execute(
            update(FaultRecord).where(FaultRecord.run_id == run_id).values(state=FaultRecordState.REVERTED.value)
        )
    clock.offset = 3 * EVERY

    assert alarms.outstanding() == [] and alarms.due() == []
