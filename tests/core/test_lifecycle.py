"""The run core on SQLite and PostgreSQL: every legal and illegal transition, validation, expiry, audit."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import pytest

from bot.catalogue.service import load_catalogue
from bot.errors import DomainError, IllegalTransition, InvalidInput, KillSwitchEngaged, NotFound, NotPermitted
from bot.runs.core import RunCore
from bot.runs.models import Run, RunState
from bot.runs.rules import MAX_TEXT, PlanRequest
from bot.runs.service import parse_run_id
from storage.db import Database
from tests.conftest import Clock
from tests.core.conftest import SYDNEY, BuildCore
from tests.core.helpers import (
    OWNER,
    actions,
    add_runs,
    approve_all,
    approved_run,
    bundled_entry,
    events,
    plan_run,
    run_in_state,
    running_run,
    said,
    verify_chain,
    write_catalogue,
)

Action = Callable[[RunCore, int], object]


def new_actions(db: Database, before: int) -> list[str]:
    return actions(db)[before:]


# -- legal transitions ---------------------------------------------------------------------------------


def test_plan_creates_a_planned_run_owned_by_the_planner(core: RunCore, db: Database, clock: Clock) -> None:
    run = plan_run(core, notes="after the release")

    assert run.label == "RUN-1" and run.run_state is RunState.PLANNED
    assert (run.owner, run.experiment_id, run.environment) == (OWNER, "CE-01", "staging")
    assert run.planned_start == clock.now
    assert run.notes == "after the release"
    assert actions(db, run.id) == ["run.planned"]


def test_full_approval_moves_planned_to_approved(core: RunCore, db: Database, clock: Clock) -> None:
    run = plan_run(core)

    partial = [core.transitions.approve(user, run.id) for user in ("rita", "sam")]
    clock.advance(minutes=3)
    last = core.transitions.approve("stella", run.id)

    assert [p.complete for p in partial] == [False, False] and last.complete
    approved = core.queries.run(run.id)
    assert approved.run_state is RunState.APPROVED
    assert approved.approved_at == clock.now
    assert {a.role: a.user_id for a in approved.approvals} == {
        "reliability_partner": "rita",
        "security_specialist": "sam",
        "stakeholder": "stella",
    }
    assert actions(db, run.id) == ["run.planned", *["approval.given"] * 3, "run.approved"]


@pytest.mark.parametrize("starter", [OWNER, "sam"])
def test_owner_or_an_approver_starts_an_approved_run(core: RunCore, db: Database, starter: str) -> None:
    run = approved_run(core)
    before = len(actions(db))

    started = core.transitions.begin(starter, run.id, dry_run=True)

    assert started.run_state is RunState.RUNNING
    assert (started.started_by, started.dry_run) == (starter, True)
    assert new_actions(db, before) == ["run.started"]
    assert events(db)[-1].actor == starter


@pytest.mark.parametrize("result", [RunState.COMPLETED, RunState.ABORTED, RunState.FAILED])
def test_running_run_finishes_with_its_result(core: RunCore, db: Database, clock: Clock, result: RunState) -> None:
    run = running_run(core)
    clock.advance(minutes=5)
    before = len(actions(db))

    finished = core.transitions.finish("rita", run.id, result, reason="stop condition breached")

    assert finished.run_state is result
    assert (finished.ended_by, finished.ended_at) == ("rita", clock.now)
    assert finished.end_reason == "stop condition breached"
    assert new_actions(db, before) == [f"run.{result.value}"]


def test_finish_refuses_a_result_that_is_not_final(core: RunCore) -> None:
    run = running_run(core)

    with pytest.raises(ValueError, match="not a final result"):
        core.transitions.finish(OWNER, run.id, RunState.APPROVED)

    assert core.queries.run(run.id).run_state is RunState.RUNNING


@pytest.mark.parametrize("state", [RunState.PLANNED, RunState.APPROVED])
def test_planned_or_approved_run_can_be_rejected(core: RunCore, db: Database, state: RunState) -> None:
    run = run_in_state(core, state)
    before = len(actions(db))

    rejected = core.transitions.reject("eve", run.id, "too close to the board demo")

    assert rejected.run_state is RunState.REJECTED
    assert new_actions(db, before) == ["run.rejected"]
    assert '"reason":"too close to the board demo"' in events(db)[-1].payload


@pytest.mark.parametrize("state", [RunState.PLANNED, RunState.APPROVED])
@pytest.mark.parametrize("actor", [OWNER, "rita"])
def test_owner_or_approver_can_cancel_before_start(core: RunCore, db: Database, state: RunState, actor: str) -> None:
    run = run_in_state(core, state)
    before = len(actions(db))

    cancelled = core.transitions.cancel(actor, run.id, "  postponed  ")

    assert cancelled.run_state is RunState.CANCELLED
    assert (cancelled.ended_by, cancelled.end_reason) == (actor, "postponed")
    assert new_actions(db, before) == ["run.cancelled"]


def test_cancel_without_reason_stores_none(core: RunCore) -> None:
    run = plan_run(core)

    assert core.transitions.cancel(OWNER, run.id).end_reason is None


@pytest.mark.parametrize("state", [RunState.PLANNED, RunState.APPROVED])
def test_overdue_plan_expires(core: RunCore, db: Database, clock: Clock, state: RunState) -> None:
    run = run_in_state(core, state)
    clock.advance(hours=24, seconds=1)

    expired = core.transitions.expire_overdue()

    assert [r.id for r in expired] == [run.id]
    stored = core.queries.run(run.id)
    assert stored.run_state is RunState.EXPIRED
    assert (stored.ended_by, stored.ended_at) == ("chaosbot", clock.now)
    assert actions(db, run.id)[-1] == "run.expired"


def test_edit_keeps_a_planned_run_planned_and_records_the_change(core: RunCore, db: Database) -> None:
    run = plan_run(core)
    core.transitions.approve("rita", run.id)

    edited = core.transitions.edit(
        OWNER, run.id, PlanRequest(experiment_id="CE-01", rollback_steps="1. CLIENT UNPAUSE")
    )

    assert edited.run_state is RunState.PLANNED and edited.version > run.version
    assert edited.rollback_steps == "1. CLIENT UNPAUSE"
    last = events(db, run.id)[-1]
    assert last.action == "run.edited"
    assert "reliability_partner by rita" in last.payload


def test_edit_can_move_the_start(core: RunCore, clock: Clock) -> None:
    run = plan_run(core)
    later = clock.now + timedelta(days=2)

    edited = core.transitions.edit(OWNER, run.id, PlanRequest(experiment_id="CE-01", planned_start=later))

    assert edited.planned_start == later


def test_edit_that_does_not_touch_notes_keeps_them(core: RunCore) -> None:
    run = plan_run(core, notes="coordinate with the portal on-call")

    edited = core.transitions.edit(OWNER, run.id, PlanRequest(experiment_id="CE-01", rollback_steps="1. Unpause."))

    assert edited.notes == "coordinate with the portal on-call"


def test_plan_can_still_be_edited_inside_its_window_after_the_planned_start(core: RunCore, clock: Clock) -> None:
    run = plan_run(core)
    clock.advance(minutes=20)

    edited = core.transitions.edit(OWNER, run.id, PlanRequest(experiment_id="CE-01", rollback_steps="1. Fixed typo."))

    assert edited.rollback_steps == "1. Fixed typo."


def test_run_timeline_of_a_whole_experiment_is_in_order(core: RunCore, db: Database) -> None:
    run = plan_run(core)
    approve_all(core, run.id)
    core.transitions.begin("rita", run.id)
    core.transitions.finish("rita", run.id, RunState.COMPLETED)

    assert actions(db, run.id) == [
        "run.planned",
        "approval.given",
        "approval.given",
        "approval.given",
        "run.approved",
        "run.started",
        "run.completed",
    ]
    assert [e.actor for e in events(db, run.id)] == [OWNER, "rita", "sam", "stella", "stella", "rita", "rita"]
    report = verify_chain(db)
    assert report.ok and report.checked == 7


def test_planned_event_records_experiment_hash_and_start(core: RunCore, db: Database) -> None:
    run = plan_run(core)

    payload = events(db, run.id)[0].payload

    assert run.experiment_hash in payload and run.planned_start.isoformat() in payload


# -- illegal transitions ---------------------------------------------------------------------------------


ACTIONS: dict[str, Action] = {
    "approve": lambda lc, run_id: lc.transitions.approve("sid", run_id),
    "begin": lambda lc, run_id: lc.transitions.begin(OWNER, run_id),
    "complete": lambda lc, run_id: lc.transitions.finish(OWNER, run_id, RunState.COMPLETED),
    "abort": lambda lc, run_id: lc.transitions.finish(OWNER, run_id, RunState.ABORTED),
    "cancel": lambda lc, run_id: lc.transitions.cancel(OWNER, run_id),
    "reject": lambda lc, run_id: lc.transitions.reject("eve", run_id, "no"),
    "edit": lambda lc, run_id: lc.transitions.edit(OWNER, run_id, PlanRequest(experiment_id="CE-01", notes="x")),
}


@pytest.mark.parametrize(
    ("state", "action", "words"),
    [
        (RunState.PLANNED, "begin", "cannot start yet: it still needs approval from reliability partner"),
        (RunState.PLANNED, "abort", "cannot abort yet"),
        (RunState.APPROVED, "approve", "is already approved (since"),
        (RunState.APPROVED, "complete", "is already approved"),
        (RunState.RUNNING, "approve", "is already running: started by <@oliver>"),
        (RunState.RUNNING, "begin", "is already running: started by <@oliver>"),
        (RunState.RUNNING, "cancel", "is already running"),
        (RunState.RUNNING, "reject", "is already running"),
        (RunState.RUNNING, "edit", "is already running"),
        (RunState.COMPLETED, "complete", "already ended: completed by <@oliver>"),
        (RunState.COMPLETED, "cancel", "already ended: completed by <@oliver>"),
        (RunState.COMPLETED, "begin", "already ended: completed"),
        (RunState.ABORTED, "complete", "already ended: aborted"),
        (RunState.FAILED, "edit", "already ended: failed"),
        (RunState.REJECTED, "approve", "already ended: rejected by <@rita>"),
        (RunState.REJECTED, "cancel", "already ended: rejected by <@rita> at"),
        (RunState.CANCELLED, "begin", "already ended: cancelled by <@oliver>"),
        (RunState.CANCELLED, "reject", "already ended: cancelled"),
    ],
)
def test_illegal_transition_is_refused_with_a_human_message(
    core: RunCore, db: Database, state: RunState, action: str, words: str
) -> None:
    run = run_in_state(core, state)
    before = actions(db)

    with pytest.raises(IllegalTransition) as caught:
        ACTIONS[action](core, run.id)

    assert words in said(caught.value)
    assert caught.value.message.startswith(run.label)
    after = core.queries.run(run.id)
    assert (after.run_state, after.version) == (state, run.version)
    assert actions(db) == before


def test_ended_message_includes_the_reason_given(core: RunCore) -> None:
    run = plan_run(core)
    core.transitions.reject("sam", run.id, "no rollback tested")

    with pytest.raises(IllegalTransition) as caught:
        core.transitions.begin(OWNER, run.id)
    assert re.search(r"rejected by <@sam> at .* \(no rollback tested\)\.$", said(caught.value))


def test_completing_a_planned_run_spells_the_verb_correctly(core: RunCore) -> None:
    run = plan_run(core)

    with pytest.raises(IllegalTransition) as caught:
        core.transitions.finish(OWNER, run.id, RunState.COMPLETED)

    assert "cannot complete yet" in caught.value.message


def test_start_before_the_window_opens_is_refused_until_start_early(core: RunCore, clock: Clock) -> None:
    run = approved_run(core, start=clock.now + timedelta(hours=2))
    early = core.policy.start_early
    clock.advance(hours=2)
    clock.now -= early + timedelta(seconds=1)

    with pytest.raises(IllegalTransition) as caught:
        core.transitions.begin(OWNER, run.id)

    assert "can start from" in caught.value.message
    assert core.rules.local(run.planned_start - early) in caught.value.message
    clock.advance(seconds=1)
    assert core.transitions.begin(OWNER, run.id).run_state is RunState.RUNNING


def test_start_after_the_window_closes_is_refused_even_before_the_scheduler_expires_it(
    core: RunCore, clock: Clock
) -> None:
    run = approved_run(core)
    clock.advance(hours=24, seconds=1)

    with pytest.raises(IllegalTransition, match="window has passed; plan it again"):
        core.transitions.begin(OWNER, run.id)

    assert core.queries.run(run.id).run_state is RunState.APPROVED


def test_start_after_expiry_names_the_expiry(core: RunCore, clock: Clock) -> None:
    run = approved_run(core)
    clock.advance(hours=25)
    core.transitions.expire_overdue()

    with pytest.raises(IllegalTransition, match="already ended: expired"):
        core.transitions.begin(OWNER, run.id)


def test_start_at_the_last_moment_of_the_window_is_allowed(core: RunCore, clock: Clock) -> None:
    run = approved_run(core)
    clock.advance(hours=24)

    assert core.transitions.begin(OWNER, run.id).run_state is RunState.RUNNING


def test_start_by_someone_who_is_neither_owner_nor_approver_is_not_permitted(core: RunCore) -> None:
    run = approved_run(core)

    with pytest.raises(NotPermitted) as caught:
        core.transitions.begin("mallory", run.id)
    assert said(caught.value).startswith("Only the owner (<@oliver>) or an approver can start RUN-1")


def test_cancel_by_a_stranger_is_not_permitted(core: RunCore) -> None:
    run = plan_run(core)

    with pytest.raises(NotPermitted, match="or an approver can cancel"):
        core.transitions.cancel("mallory", run.id)


def test_unknown_run_is_not_found(core: RunCore) -> None:
    with pytest.raises(NotFound, match="There is no RUN-999"):
        core.transitions.approve("rita", 999)
    with pytest.raises(NotFound):
        core.queries.run(999)


@pytest.mark.parametrize(("text", "number"), [("RUN-42", 42), ("run42", 42), (" 7 ", 7), ("Run-0010", 10)])
def test_run_ids_are_read_in_the_forms_people_type(text: str, number: int) -> None:
    assert parse_run_id(text) == number


@pytest.mark.parametrize("text", ["", "RUN-", "RUN-4x", "CE-01", "42; drop table runs", "1234567890"])
def test_anything_else_is_not_a_run_id(text: str) -> None:
    with pytest.raises(NotFound, match="run ids look like RUN-42"):
        parse_run_id(text)


# -- kill switch --------------------------------------------------------------------------------------


def test_engaged_kill_switch_blocks_every_start(core: RunCore, db: Database) -> None:
    run = approved_run(core)

    assert core.kill_switch.engage("stella", "portal incident")
    with pytest.raises(KillSwitchEngaged) as caught:
        core.transitions.begin(OWNER, run.id)

    assert "by <@stella>" in said(caught.value) and "/chaos resume" in caught.value.message
    assert core.queries.run(run.id).run_state is RunState.APPROVED
    assert "run.started" not in actions(db)


def test_only_an_approver_may_release_the_kill_switch(core: RunCore) -> None:
    run = approved_run(core)
    core.kill_switch.engage(OWNER, "something looks wrong")

    with pytest.raises(NotPermitted, match="Only an approver can resume"):
        core.kill_switch.release(OWNER)
    assert core.kill_switch.engaged()

    assert core.kill_switch.release("rita")
    assert not core.kill_switch.engaged()
    assert core.transitions.begin(OWNER, run.id).run_state is RunState.RUNNING


def test_kill_switch_changes_are_audited_once(core: RunCore, db: Database) -> None:
    assert core.kill_switch.engage("sam", "incident") is True
    assert core.kill_switch.engage("rita", "again") is False
    assert core.kill_switch.release("rita") is True
    assert core.kill_switch.release("sam") is False

    assert actions(db) == ["killswitch.engaged", "killswitch.released"]
    assert [e.actor for e in events(db)] == ["sam", "rita"]
    assert verify_chain(db).ok


def test_kill_switch_does_not_stop_planning_or_approving(core: RunCore) -> None:
    core.kill_switch.engage("sam", "incident")

    run = approved_run(core)

    assert run.run_state is RunState.APPROVED


# -- plan validation ----------------------------------------------------------------------------------


def test_unknown_experiment_lists_the_known_ids(core: RunCore) -> None:
    with pytest.raises(NotFound) as caught:
        plan_run(core, experiment="CE-99")

    assert "'CE-99'" in caught.value.message
    for experiment in core.catalogue.experiments:
        assert experiment.id in caught.value.message


def test_experiment_id_is_read_case_insensitively(core: RunCore) -> None:
    assert plan_run(core, experiment="ce-03").experiment_id == "CE-03"


def test_environment_not_allowed_for_the_experiment_is_refused(core: RunCore, db: Database) -> None:
    with pytest.raises(InvalidInput) as caught:
        plan_run(core, experiment="CE-01", environment="production")

    assert caught.value.field == "environment"
    assert "CE-01 may run only in: staging" in caught.value.message
    assert actions(db) == []


def test_environment_is_normalised(core: RunCore) -> None:
    assert plan_run(core, experiment="CE-05", environment=" Production ").environment == "production"


def test_environment_without_policy_rules_is_refused(tmp_path: Path, build_core: BuildCore) -> None:
    entry = bundled_entry("CE-01")
    entry["environments"] = ["qa"]
    catalogue = load_catalogue(write_catalogue(tmp_path / "qa.yml", [entry]))
    core = build_core(catalogue=catalogue)

    with pytest.raises(InvalidInput, match="no rules for qa, so nobody could approve it"):
        plan_run(core)


def test_start_in_the_past_is_refused(core: RunCore, clock: Clock) -> None:
    with pytest.raises(InvalidInput) as caught:
        plan_run(core, start=clock.now - timedelta(hours=1))

    assert caught.value.field == "planned_start" and "in the past" in caught.value.message


def test_start_a_few_minutes_ago_is_tolerated(core: RunCore, clock: Clock) -> None:
    start = clock.now - timedelta(minutes=4)

    assert plan_run(core, start=start).planned_start == start


def test_start_more_than_ninety_days_ahead_is_refused(core: RunCore, clock: Clock) -> None:
    with pytest.raises(InvalidInput, match="90 days"):
        plan_run(core, start=clock.now + timedelta(days=91))


def test_naive_start_is_read_in_the_teams_time_zone(core: RunCore, clock: Clock) -> None:
    local = (clock.now + timedelta(days=1)).astimezone(SYDNEY).replace(tzinfo=None, second=0)

    run = plan_run(core, start=local)

    assert run.planned_start == local.replace(tzinfo=SYDNEY)
    assert core.queries.run(run.id).planned_start == local.replace(tzinfo=SYDNEY)


@pytest.mark.parametrize("rollback", ["   ", "\n\t"])
def test_empty_rollback_is_refused(core: RunCore, rollback: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        plan_run(core, rollback=rollback)

    assert caught.value.field == "rollback_steps" and caught.value.message == "A plan needs rollback steps."


def test_omitted_rollback_uses_the_catalogues_numbered_steps(core: RunCore) -> None:
    run = plan_run(core)

    steps = core.rules.experiment("CE-01").rollback_steps
    assert run.rollback_steps.splitlines() == [f"{i}. {step}" for i, step in enumerate(steps, start=1)]


def test_overlong_notes_are_refused_with_their_length(core: RunCore) -> None:
    with pytest.raises(InvalidInput, match=f"{MAX_TEXT + 1} characters"):
        plan_run(core, notes="x" * (MAX_TEXT + 1))


# -- expiry ------------------------------------------------------------------------------------------


def test_expiry_leaves_runs_inside_their_window_alone(core: RunCore, clock: Clock) -> None:
    due = plan_run(core)
    later = plan_run(core, start=clock.now + timedelta(hours=3))
    clock.advance(hours=24)

    assert core.transitions.expire_overdue() == []
    clock.advance(seconds=1)
    assert [r.id for r in core.transitions.expire_overdue()] == [due.id]
    assert core.queries.run(later.id).run_state is RunState.PLANNED


def test_an_overdue_plan_expires_however_many_newer_plans_wait(core: RunCore, db: Database, clock: Clock) -> None:
    due = plan_run(core)
    experiment = core.catalogue.get("CE-01")
    assert experiment is not None
    add_runs(db, experiment, RunState.PLANNED, 1000, planned_start=clock.now + timedelta(days=30))
    clock.advance(hours=25)

    assert [r.id for r in core.transitions.expire_overdue()] == [due.id]


def test_expiry_never_touches_running_or_ended_runs(core: RunCore, db: Database, clock: Clock) -> None:
    running = running_run(core)
    cancelled = run_in_state(core, RunState.CANCELLED)
    clock.advance(days=3)
    before = actions(db)

    assert core.transitions.expire_overdue() == []
    assert core.queries.run(running.id).run_state is RunState.RUNNING
    assert core.queries.run(cancelled.id).run_state is RunState.CANCELLED
    assert actions(db) == before


def test_expiring_twice_expires_once(core: RunCore, db: Database, clock: Clock) -> None:
    run = plan_run(core)
    clock.advance(hours=25)

    core.transitions.expire_overdue()
    assert core.transitions.expire_overdue() == []
    assert actions(db, run.id).count("run.expired") == 1


# -- record and chain ------------------------------------------------------------------------------------


def test_record_appends_a_non_transition_event(core: RunCore, db: Database) -> None:
    run = plan_run(core)

    core.audit.record("rita", "command.status", run.id, channel="C123", text="/chaos status RUN-1")

    last = events(db)[-1]
    assert (last.actor, last.action, last.run_id) == ("rita", "command.status", run.id)
    assert '"channel":"C123"' in last.payload


def test_every_error_a_person_can_cause_is_a_domain_error_with_a_message(core: RunCore) -> None:
    run = plan_run(core)
    attempts: list[Callable[[], object]] = [
        lambda: core.transitions.begin(OWNER, run.id),
        lambda: core.transitions.approve(OWNER, run.id),
        lambda: core.transitions.reject("rita", run.id, ""),
        lambda: core.queries.run(12345),
        lambda: plan_run(core, experiment="nope"),
    ]
    for attempt in attempts:
        with pytest.raises(DomainError) as caught:
            attempt()
        assert caught.value.message and caught.value.message == str(caught.value)


def test_all_transitions_leave_a_verifiable_chain(core: RunCore, db: Database, clock: Clock) -> None:
    for state in RunState:
        if state is not RunState.EXPIRED:
            run_in_state(core, state)
    overdue: Run = plan_run(core)
    clock.advance(hours=25)
    core.transitions.expire_overdue()

    report = verify_chain(db)
    assert report.ok, report.problem
    assert report.checked == len(actions(db))
    assert core.queries.run(overdue.id).run_state is RunState.EXPIRED
    run_events = {action for action in actions(db) if action.startswith("run.")}
    expected = {f"run.{state.value}" for state in RunState if state is not RunState.RUNNING} | {"run.started"}
    assert run_events == expected
