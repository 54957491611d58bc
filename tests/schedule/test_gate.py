"""The start gate: windows refuse without override, freezes refuse with one, and the words say what would pass."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from bot.freezes.service import FreezeRequest, Freezes
from bot.policy.service import load_policy
from bot.schedule.gate import Rule, StartGate, StartRefused
from bot.words import Person
from storage.db import Database
from tests.conftest import Clock
from tests.schedule.factories import SYDNEY, add_run

POLICY = load_policy()  # production: Mon-Fri 22:00-05:00, weekends; staging: any time
WEDNESDAY_AFTERNOON = datetime(2026, 12, 2, 14, 0, tzinfo=SYDNEY)


@pytest.fixture
def freezes(db: Database, clock: Clock) -> Freezes:
    clock.now = WEDNESDAY_AFTERNOON.astimezone(UTC)
    return Freezes(db, POLICY, zone=SYDNEY, clock=clock)


@pytest.fixture
def gate(freezes: Freezes) -> StartGate:
    return StartGate(POLICY, freezes, zone=SYDNEY)


def freeze(freezes: Freezes, hours: float, envs: tuple[str, ...] = ()) -> int:
    now = freezes.clock()
    request = FreezeRequest(
        starts_at=now, ends_at=now + timedelta(hours=hours), reason="ACME go-live", environments=envs
    )
    return freezes.add("rita", request, approver=True).id


def test_outside_the_window_the_start_is_refused_with_the_next_window_and_no_override(
    db: Database, gate: StartGate
) -> None:
    run = add_run(db, planned_start=WEDNESDAY_AFTERNOON, environment="production")
    refusal = gate.refusal(run, WEDNESDAY_AFTERNOON)
    assert refusal is not None
    assert refusal.rule is Rule.WINDOW and not refusal.overridable and refusal.freeze is None
    assert refusal.next_start == datetime(2026, 12, 2, 22, 0, tzinfo=SYDNEY)
    assert str(refusal) == (
        f"{run.label} may not start now: it is outside production's off-peak windows, "
        "Mon-Fri 22:00-05:00; Sat, Sun 00:00-24:00 (Australia/Sydney). "
        "The next window opens Wed 02 Dec 2026 22:00 AEDT."
    )
    assert gate.refusal(run, datetime(2026, 12, 2, 23, 0, tzinfo=SYDNEY)) is None


def test_a_window_opening_after_the_plan_expires_says_to_edit_the_plan(db: Database, gate: StartGate) -> None:
    # Planned for Monday 06:00: Monday's window opens at 22:00, inside the default 24h expiry but not inside 2h.
    run = add_run(db, planned_start=datetime(2026, 12, 7, 6, 0, tzinfo=SYDNEY), environment="production")
    assert "plan expires" not in str(gate.refusal(run, datetime(2026, 12, 7, 6, 0, tzinfo=SYDNEY)))
    short = POLICY.model_copy(update={"plan_expiry": timedelta(hours=2)})
    strict = StartGate(short, gate.freezes, zone=SYDNEY)
    refusal = strict.refusal(run, datetime(2026, 12, 7, 6, 0, tzinfo=SYDNEY))
    assert refusal is not None
    assert "That is after the plan expires (Mon 07 Dec 2026 08:00 AEDT): edit it to start then." in str(refusal)


def test_staging_has_no_windows(db: Database, gate: StartGate) -> None:
    run = add_run(db, planned_start=WEDNESDAY_AFTERNOON, environment="staging")
    assert gate.refusal(run, WEDNESDAY_AFTERNOON) is None


def test_a_freeze_refuses_with_its_reason_and_window_and_an_approver_may_override_it(
    db: Database, gate: StartGate, freezes: Freezes
) -> None:
    run = add_run(db, planned_start=WEDNESDAY_AFTERNOON, environment="staging")
    frozen = freeze(freezes, 3)
    refusal = gate.refusal(run, WEDNESDAY_AFTERNOON)
    assert refusal is not None
    assert refusal.rule is Rule.FREEZE and refusal.overridable
    assert refusal.freeze is not None and refusal.freeze.id == frozen
    assert refusal.next_start == datetime(2026, 12, 2, 17, 0, tzinfo=SYDNEY)
    assert refusal.words.people() == [Person("rita")]
    text = str(refusal)
    assert "a delivery freeze holds in staging" in text and "\u201cACME go-live\u201d" in text
    assert "Wed 02 Dec 2026 14:00 AEDT to Wed 02 Dec 2026 17:00 AEDT" in text
    assert "an approver can start it anyway, giving a reason" in text
    assert gate.refusal(run, WEDNESDAY_AFTERNOON, overriding=frozen) is None
    assert gate.refusal(run, datetime(2026, 12, 2, 17, 0, tzinfo=SYDNEY)) is None


def test_a_freeze_for_another_environment_does_not_refuse(db: Database, gate: StartGate, freezes: Freezes) -> None:
    freeze(freezes, 3, envs=("production",))
    run = add_run(db, planned_start=WEDNESDAY_AFTERNOON, environment="staging")
    assert gate.refusal(run, WEDNESDAY_AFTERNOON) is None


def test_the_window_is_named_before_a_freeze_because_overriding_would_not_help(
    db: Database, gate: StartGate, freezes: Freezes
) -> None:
    freeze(freezes, 3)
    run = add_run(db, planned_start=WEDNESDAY_AFTERNOON, environment="production")
    refusal = gate.refusal(run, WEDNESDAY_AFTERNOON)
    assert refusal is not None and refusal.rule is Rule.WINDOW


def test_the_plan_form_check_names_the_next_allowed_start(gate: StartGate) -> None:
    assert gate.window_error("production", datetime(2026, 12, 5, 14, 0, tzinfo=SYDNEY)) is None  # Saturday
    assert gate.window_error("staging", WEDNESDAY_AFTERNOON) is None
    assert gate.window_error("production", WEDNESDAY_AFTERNOON) == (
        "Wed 02 Dec 2026 14:00 AEDT is outside production's off-peak windows, "
        "Mon-Fri 22:00-05:00; Sat, Sun 00:00-24:00 (Australia/Sydney). "
        "The next allowed start is Wed 02 Dec 2026 22:00 AEDT."
    )


def test_check_raises_a_domain_error_carrying_the_refusal(db: Database, gate: StartGate, freezes: Freezes) -> None:
    frozen = freeze(freezes, 3)
    run = add_run(db, planned_start=WEDNESDAY_AFTERNOON, environment="staging")
    with pytest.raises(StartRefused) as caught:
        gate.check(run, WEDNESDAY_AFTERNOON)
    assert caught.value.refusal.freeze is not None and caught.value.refusal.freeze.id == frozen
    assert caught.value.words == caught.value.refusal.words
    gate.check(run, WEDNESDAY_AFTERNOON, overriding=frozen)
