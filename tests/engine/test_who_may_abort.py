"""Who may abort and resume (policy ``abort: anyone | approvers``; resume: approvers), on both databases:
a refused abort or resume changes nothing and leaves an audit event saying who tried."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from sqlalchemy import select

from bot.audit import service as audit
from bot.audit.models import AuditEvent
from bot.errors import NotPermitted
from bot.policy.models import AbortRule
from bot.runs.models import RunState
from storage.db import Database
from tests.engine.conftest import OWNER, World, any_hour_policy
from tests.engine.lab import wait_for

OUTSIDER = "olga"  # holds no role in the demo policy
APPROVER = "rita"


@pytest.fixture
def strict(db: Database, make_world: Callable[..., World]) -> World:
    return make_world(db, policy=any_hour_policy().model_copy(update={"abort": AbortRule.APPROVERS}))


def refusals(world: World) -> list[tuple[str, str, int | None]]:
    with world.db.transaction() as session:
        events = session.execute(select(AuditEvent).order_by(AuditEvent.seq)).scalars().all()
        return [(e.actor, e.action, e.run_id) for e in events if e.action.endswith("refused")]


def audit_chain_valid(world: World) -> bool:
    with world.db.transaction() as session:
        return audit.verify(session).ok


def test_by_default_anyone_in_the_channel_may_abort(world: World) -> None:
    engine = world.engine()
    run_id = world.approved()
    engine.start(OWNER, run_id)

    assert engine.abort(OUTSIDER, run_id, "I see errors").reverted
    assert not world.lab.fault_on and world.run(run_id).run_state is RunState.ABORTED


def test_with_abort_approvers_an_outsider_is_refused_audited_and_the_fault_stays_watched(strict: World) -> None:
    engine = strict.engine()
    run_id = strict.approved()
    engine.start(OWNER, run_id)

    with pytest.raises(NotPermitted, match="Only an approver can abort"):
        engine.abort(OUTSIDER, run_id, "let me")
    with pytest.raises(NotPermitted):
        engine.abort_all(OUTSIDER, "let me")

    assert strict.lab.fault_on and strict.run(run_id).run_state is RunState.RUNNING
    assert not strict.core.kill_switch.engaged() and engine.running() == [run_id]
    assert refusals(strict) == [(OUTSIDER, "abort.refused", run_id), (OUTSIDER, "abort.refused", None)]
    assert audit_chain_valid(strict)

    assert engine.abort(APPROVER, run_id, "approver stops it").reverted
    assert not strict.lab.fault_on


def test_the_engine_itself_is_never_refused_under_abort_approvers(strict: World) -> None:
    engine = strict.engine()
    run_id = strict.approved()
    engine.start(OWNER, run_id)
    engine.close()  # the lease lapses: another replica's dead man's switch must still revert it

    rescuer = strict.engine()
    wait_for(lambda: run_id in rescuer.recover_orphans(), timeout=10, what="the orphan sweep")
    assert not strict.lab.fault_on and refusals(strict) == []


def test_only_approvers_may_resume_and_a_refused_resume_is_audited(world: World) -> None:
    engine = world.engine()
    engine.abort_all(APPROVER, "incident")

    with pytest.raises(NotPermitted, match="Only an approver can resume"):
        engine.resume(OUTSIDER)

    assert world.core.kill_switch.engaged()
    assert refusals(world) == [(OUTSIDER, "killswitch.resume_refused", None)]
    assert engine.resume(APPROVER) and audit_chain_valid(world)
