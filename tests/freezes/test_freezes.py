"""Freezes: add, list and remove by approvers, clear refusals, every change and override in the audit chain."""

from __future__ import annotations

import json
from datetime import datetime, timedelta

import pytest
from sqlalchemy import select

from bot.audit import service as audit
from bot.audit.models import AuditEvent
from bot.errors import IllegalTransition, InvalidInput, NotFound, NotPermitted
from bot.freezes.service import FreezeRequest, Freezes, describe, listing_words
from bot.policy.service import load_policy
from bot.words import Person
from storage.db import Database
from tests.conftest import Clock
from tests.schedule.factories import SYDNEY, add_run


@pytest.fixture
def freezes(db: Database, clock: Clock) -> Freezes:
    return Freezes(db, load_policy(), zone=SYDNEY, clock=clock)


def request(
    clock: Clock, start_h: float, end_h: float, reason: str = "ACME delivery", envs: tuple[str, ...] = ()
) -> FreezeRequest:
    return FreezeRequest(
        starts_at=clock.now + timedelta(hours=start_h),
        ends_at=clock.now + timedelta(hours=end_h),
        reason=reason,
        environments=envs,
    )


def events(db: Database) -> list[tuple[str, str, dict[str, object]]]:
    with db.transaction() as session:
        rows = session.scalars(select(AuditEvent).order_by(AuditEvent.seq))
        return [(row.actor, row.action, json.loads(row.payload)) for row in rows]


def test_an_approver_adds_lists_and_removes_a_freeze_and_each_change_is_audited(
    db: Database, clock: Clock, freezes: Freezes
) -> None:
    added = freezes.add("rita", request(clock, 1, 9, envs=("production",)), approver=True)
    everywhere = freezes.add("sam", request(clock, 10, 12, reason="Board demo"), approver=True)
    assert [f.id for f in freezes.upcoming()] == [added.id, everywhere.id]
    assert added.environments == ["production"] and everywhere.everywhere

    removed = freezes.remove("sam", added.id, approver=True)
    assert removed.removed_by == "sam" and removed.version == 2
    assert [f.id for f in freezes.upcoming()] == [everywhere.id]

    trail = events(db)
    assert [(actor, action) for actor, action, _ in trail] == [
        ("rita", "freeze.added"),
        ("sam", "freeze.added"),
        ("sam", "freeze.removed"),
    ]
    assert trail[0][2]["environments"] == ["production"] and trail[0][2]["reason"] == "ACME delivery"
    assert trail[1][2]["environments"] == "all"
    with db.transaction() as session:
        assert audit.verify(session).ok


def test_list_shows_current_and_coming_but_not_past_freezes(db: Database, clock: Clock, freezes: Freezes) -> None:
    current = freezes.add("rita", request(clock, -1, 1), approver=True)
    coming = freezes.add("rita", request(clock, 5, 6), approver=True)
    clock.advance(hours=2)
    assert [f.id for f in freezes.upcoming()] == [coming.id]
    assert current.id != coming.id


def test_only_approvers_add_or_remove(freezes: Freezes, clock: Clock) -> None:
    with pytest.raises(NotPermitted, match="Only approvers can add a freeze"):
        freezes.add("oliver", request(clock, 1, 2), approver=False)
    added = freezes.add("rita", request(clock, 1, 2), approver=True)
    with pytest.raises(NotPermitted, match="Only approvers can remove a freeze"):
        freezes.remove("oliver", added.id, approver=False)
    assert [f.id for f in freezes.upcoming()] == [added.id]


@pytest.mark.parametrize(
    ("start_h", "end_h", "envs", "reason", "problem"),
    [
        (3, 2, (), "delivery", "before it starts"),
        (3, 3, (), "delivery", "before it starts"),
        (-5, -1, (), "delivery", "That window is already over"),
        (1, 2, ("moon",), "delivery", "There is no environment 'moon' in the policy; known: staging, production"),
        (1, 2, (), "   ", "needs a reason"),
        (1, 2, (), "x" * 501, "keep it under 500"),
    ],
)
def test_bad_freezes_are_refused_with_the_rule_and_what_would_pass(
    db: Database,
    freezes: Freezes,
    clock: Clock,
    start_h: float,
    end_h: float,
    envs: tuple[str, ...],
    reason: str,
    problem: str,
) -> None:
    with pytest.raises(InvalidInput) as caught:
        freezes.add("rita", request(clock, start_h, end_h, reason=reason, envs=envs), approver=True)
    assert problem in caught.value.message
    assert freezes.upcoming() == [] and events(db) == []


def test_an_overlap_for_the_same_environments_is_refused_naming_the_freeze(freezes: Freezes, clock: Clock) -> None:
    first = freezes.add("rita", request(clock, 1, 5, envs=("production",)), approver=True)
    with pytest.raises(InvalidInput) as caught:
        freezes.add("sam", request(clock, 4, 8, reason="Other", envs=("production",)), approver=True)
    message = caught.value.message
    assert f"overlaps {first.label}" in message and "ACME delivery" in message and "@rita" in message
    assert f"remove {first.label} first" in message
    # All environments overlaps everything; a different environment does not.
    with pytest.raises(InvalidInput, match="overlaps"):
        freezes.add("sam", request(clock, 4, 8, reason="Other"), approver=True)
    staging = freezes.add("sam", request(clock, 4, 8, reason="Other", envs=("staging",)), approver=True)
    # Back to back is not an overlap.
    after = freezes.add("sam", request(clock, 5, 6, reason="Next", envs=("production",)), approver=True)
    assert {f.id for f in freezes.upcoming()} == {first.id, staging.id, after.id}


def test_removing_twice_or_an_unknown_freeze_says_why(freezes: Freezes, clock: Clock) -> None:
    added = freezes.add("rita", request(clock, 1, 2), approver=True)
    freezes.remove("sam", added.id, approver=True)
    with pytest.raises(IllegalTransition) as caught:
        freezes.remove("rita", added.id, approver=True)
    assert caught.value.words.people() == [Person("sam")]
    assert f"{added.label} was already removed by @sam" in caught.value.message
    with pytest.raises(NotFound, match="There is no FRZ-999"):
        freezes.remove("rita", 999, approver=True)


def test_covering_finds_the_freeze_for_an_environment_and_a_moment(freezes: Freezes, clock: Clock) -> None:
    production = freezes.add("rita", request(clock, 1, 3, envs=("production",)), approver=True)
    inside = clock.now + timedelta(hours=2)
    assert [f.id for f in freezes.covering("production", inside)] == [production.id]
    assert freezes.covering("staging", inside) == []
    assert freezes.covering("production", clock.now + timedelta(hours=3)) == []  # the end is exclusive


def test_an_override_is_recorded_with_who_and_why_for_approvers_only(
    db: Database, freezes: Freezes, clock: Clock
) -> None:
    freeze = freezes.add("rita", request(clock, 0, 2), approver=True)
    run = add_run(db, planned_start=clock.now)
    with pytest.raises(NotPermitted):
        freezes.record_override(run.id, "oliver", "urgent", freeze, approver=False)
    with pytest.raises(InvalidInput, match="Say why"):
        freezes.record_override(run.id, "sam", "  ", freeze, approver=True)
    freezes.record_override(run.id, "sam", "The client asked for it", freeze, approver=True)
    actor, action, payload = events(db)[-1]
    assert (actor, action) == ("sam", "freeze.overridden")
    assert payload["freeze"] == freeze.id and payload["override_reason"] == "The client asked for it"
    with db.transaction() as session:
        assert [event.action for event in audit.timeline(session, run.id)] == ["freeze.overridden"]


def test_a_freeze_describes_itself_with_its_window_in_the_team_zone(freezes: Freezes, clock: Clock) -> None:
    clock.now = datetime(2026, 12, 1, tzinfo=SYDNEY)
    start = datetime(2026, 12, 10, 9, 0, tzinfo=SYDNEY)
    frozen = freezes.add(
        "rita",
        FreezeRequest(starts_at=start, ends_at=start + timedelta(hours=8), reason="ACME delivery"),
        approver=True,
    )
    words = describe(frozen, SYDNEY)
    assert words.people() == [Person("rita")]
    assert str(words) == (
        f"{frozen.label} · Thu 10 Dec 2026 09:00 AEDT to Thu 10 Dec 2026 17:00 AEDT · all environments"
        " · \u201cACME delivery\u201d · added by @rita"
    )


@pytest.mark.postgres
def test_two_replicas_adding_overlapping_freezes_at_once_get_one_freeze(pg_db: Database, clock: Clock) -> None:
    import threading

    replicas = [Freezes(pg_db, load_policy(), zone=SYDNEY, clock=clock) for _ in range(2)]
    barrier = threading.Barrier(2)
    outcomes: list[str] = []

    def add(freezes: Freezes, actor: str) -> None:
        barrier.wait()
        try:
            freezes.add(actor, request(clock, 1, 3), approver=True)
            outcomes.append("added")
        except InvalidInput:
            outcomes.append("refused")

    threads = [
        threading.Thread(target=add, args=(f, actor)) for f, actor in zip(replicas, ("rita", "sam"), strict=True)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert sorted(outcomes) == ["added", "refused"]
    assert len(replicas[0].upcoming()) == 1


def test_the_list_answer_has_one_line_per_freeze_or_says_there_is_none(freezes: Freezes, clock: Clock) -> None:
    assert "No freeze is in force or coming" in str(listing_words([], SYDNEY))
    first = freezes.add("rita", request(clock, 1, 2, envs=("production",)), approver=True)
    second = freezes.add("sam", request(clock, 3, 4, reason="Board demo"), approver=True)
    words = listing_words(freezes.upcoming(), SYDNEY)
    lines = str(words).splitlines()
    assert lines[0] == "Current and coming freezes:"
    assert lines[1].startswith(f"• {first.label} · ") and lines[1].endswith(
        "production · \u201cACME delivery\u201d · added by @rita"
    )
    assert lines[2].startswith(f"• {second.label} · ") and "all environments" in lines[2]
    assert words.people() == [Person("rita"), Person("sam")]
