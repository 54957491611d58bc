"""The start gate wired into the core: windows and freezes refuse starts by anyone, the scheduler
included; an approver's override is audited with the start; edits record what changed."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from bot.audit.models import AuditEvent
from bot.errors import InvalidInput, NotPermitted
from bot.freezes.service import FreezeRequest
from bot.runs.core import RunCore
from bot.runs.models import RunState
from bot.runs.rules import PlanRequest
from bot.runs.transitions import FreezeOverride
from bot.schedule.gate import Rule, StartRefused
from bot.words import SYSTEM_ACTOR
from tests.conftest import Clock
from tests.core.helpers import OWNER, PRODUCTION_APPROVERS, approve_all, plan_run, said

SYDNEY = ZoneInfo("Australia/Sydney")
WEDNESDAY_NOON = datetime(2026, 12, 9, 12, 0, tzinfo=SYDNEY)  # outside the demo policy's production windows


def test_a_production_start_outside_its_windows_is_refused_by_hand_and_by_the_scheduler(
    core: RunCore, clock: Clock
) -> None:
    clock.now = WEDNESDAY_NOON.replace(hour=4, minute=50)  # planned inside the night window, started after it
    run = approve_all(core, plan_run(core, experiment="CE-05", environment="production").id, PRODUCTION_APPROVERS)
    clock.now = WEDNESDAY_NOON

    for actor in (OWNER, SYSTEM_ACTOR):
        with pytest.raises(StartRefused) as caught:
            core.transitions.may_start(actor, run)
        assert caught.value.refusal.rule is Rule.WINDOW and not caught.value.refusal.overridable
        assert "The next window opens Wed 09 Dec 2026 22:00 AEDT" in said(caught.value)

    clock.now = WEDNESDAY_NOON.replace(hour=22, minute=10)
    later = approve_all(
        core,
        plan_run(core, experiment="CE-05", environment="production", start=clock.now).id,
        PRODUCTION_APPROVERS,
    )
    core.transitions.may_start(SYSTEM_ACTOR, later)  # inside the window: the scheduler may start it
    with pytest.raises(NotPermitted):
        core.transitions.may_start("bob", later)  # but not someone who is neither owner nor approver


def test_a_freeze_refuses_a_start_until_an_approver_overrides_it_with_a_recorded_reason(
    core: RunCore, clock: Clock
) -> None:
    clock.now = WEDNESDAY_NOON
    freezes = core.gate.freezes
    freeze = freezes.add(
        "rita",
        FreezeRequest(clock.now - timedelta(hours=1), clock.now + timedelta(hours=3), "Client delivery"),
        approver=True,
    )
    run = approve_all(core, plan_run(core, environment="staging").id)

    with pytest.raises(StartRefused) as caught:
        core.transitions.may_start(SYSTEM_ACTOR, run)
    refusal = caught.value.refusal
    assert refusal.rule is Rule.FREEZE and refusal.overridable and refusal.freeze is not None
    assert refusal.freeze.id == freeze.id and "Client delivery" in said(caught.value)
    with pytest.raises(NotPermitted):
        core.transitions.may_start(OWNER, run, overriding=freeze.id)  # the owner holds no approver role

    core.transitions.may_start("rita", run, overriding=freeze.id)
    started = core.transitions.begin("rita", run.id, override=FreezeOverride(freeze.id, "the client agreed"))
    assert started.run_state is RunState.RUNNING
    with core.db.transaction() as session:
        events = list(session.scalars(select(AuditEvent).where(AuditEvent.run_id == run.id).order_by(AuditEvent.seq)))
    actions = [event.action for event in events]
    assert actions[-2:] == ["freeze.overridden", "run.started"]  # one transaction, override first
    assert events[-2].actor == "rita" and json.loads(events[-2].payload)["override_reason"] == "the client agreed"


def test_an_edit_by_an_approver_records_what_changed_and_carries_the_automatic_start(
    core: RunCore, clock: Clock
) -> None:
    run = core.transitions.plan(OWNER, PlanRequest(experiment_id="CE-01", auto_start=True))
    assert run.auto_start
    core.transitions.approve("rita", run.id)

    edited = core.transitions.edit("sam", run.id, PlanRequest(experiment_id="CE-01", auto_start=False, notes="later"))
    assert not edited.auto_start and edited.approvals == [] and edited.run_state is RunState.PLANNED
    with core.db.transaction() as session:
        event = session.scalars(select(AuditEvent).where(AuditEvent.action == "run.edited")).one()
    assert event.actor == "sam"
    payload = json.loads(event.payload)
    assert payload["changed"] == {"notes": ["", "later"], "auto_start": [True, False]}
    assert payload["approvals_reset"] == ["reliability_partner by rita"]


OUTSIDE_PRODUCTION = (
    "Wed 09 Dec 2026 12:00 AEDT is outside production's off-peak windows, "
    "Mon-Fri 22:00-05:00; Sat, Sun 00:00-24:00 (Australia/Sydney). "
    "The next allowed start is Wed 09 Dec 2026 22:00 AEDT."
)


def test_a_plan_outside_its_environments_windows_is_refused_by_the_core_as_by_the_form(
    core: RunCore, clock: Clock
) -> None:
    clock.now = WEDNESDAY_NOON - timedelta(hours=2)

    with pytest.raises(InvalidInput) as caught:
        core.transitions.plan(OWNER, PlanRequest("CE-05", "production", planned_start=WEDNESDAY_NOON))

    assert caught.value.field == "planned_start" and said(caught.value) == OUTSIDE_PRODUCTION
    assert core.queries.status(running=10, waiting=10).waiting.total == 0
    assert core.transitions.plan(OWNER, PlanRequest("CE-05", "staging", planned_start=WEDNESDAY_NOON))


def test_an_edit_moving_a_plan_outside_its_windows_is_refused_and_changes_nothing(core: RunCore, clock: Clock) -> None:
    clock.now = WEDNESDAY_NOON - timedelta(hours=2)
    tonight = WEDNESDAY_NOON.replace(hour=22, minute=30)
    run = plan_run(core, experiment="CE-05", environment="production", start=tonight)

    with pytest.raises(InvalidInput) as caught:
        core.transitions.edit(OWNER, run.id, PlanRequest("CE-05", planned_start=WEDNESDAY_NOON))
    assert caught.value.field == "planned_start" and said(caught.value) == OUTSIDE_PRODUCTION

    staging = plan_run(core, experiment="CE-05", environment="staging", start=WEDNESDAY_NOON)
    with pytest.raises(InvalidInput, match="outside production's off-peak windows"):
        core.transitions.edit(OWNER, staging.id, PlanRequest("CE-05", environment="production"))

    assert core.queries.run(run.id).planned_start == tonight and core.queries.run(run.id).version == run.version
    assert core.queries.run(staging.id).environment == "staging"
