"""The words of the notice, the not-approved start and a missed firing: people as values, times in the team zone."""

from __future__ import annotations

from datetime import datetime

from bot.policy.models import Role
from bot.policy.service import load_policy
from bot.runs.models import Run, RunState
from bot.schedule import messages
from bot.schedule.service import AUTO_START, NOTICE
from bot.words import Person
from tests.schedule.factories import SYDNEY

START = datetime(2026, 12, 2, 22, 0, tzinfo=SYDNEY)


def run(auto_start: bool = True) -> Run:
    return Run(
        id=4,
        experiment_id="CE-01",
        experiment={"id": "CE-01", "title": "Share token cache outage"},
        environment="production",
        owner="oliver",
        planned_start=START,
        state=RunState.APPROVED.value,
        auto_start=auto_start,
    )


def test_the_notice_names_run_experiment_environment_owner_time_and_how_to_stop() -> None:
    words = messages.notice(run(), zone=SYDNEY)
    assert words.people() == [Person("oliver")]
    assert str(words) == (
        "Coming up: RUN-4 (CE-01 · Share token cache outage) in production, owned by @oliver, is planned for "
        "Wed 02 Dec 2026 22:00 AEDT. It starts by itself at that time, if every approval is in and no window or "
        "freeze refuses. To stop it once it runs: `/chaos abort RUN-4`."
    )
    assert "does not start by itself" in str(messages.notice(run(auto_start=False), zone=SYDNEY))


def test_a_start_without_approvals_names_the_missing_roles_and_their_holders() -> None:
    words = messages.not_approved(run(), missing=[Role.STAKEHOLDER, Role.EXECUTIVE], policy=load_policy(), zone=SYDNEY)
    assert words.people() == [Person("stella"), Person("sid"), Person("eve")]
    assert str(words) == (
        "RUN-4 did not start by itself at Wed 02 Dec 2026 22:00 AEDT: it still needs approval from "
        "stakeholder (@stella or @sid), executive (@eve). Once approved it can be started by hand until "
        "Thu 03 Dec 2026 22:00 AEDT, when the plan expires."
    )


def test_missed_firings_say_what_did_not_happen() -> None:
    assert "notice for RUN-4 due Wed 02 Dec 2026 21:45 AEDT" in str(
        messages.missed(run(), NOTICE, zone=SYDNEY, due_at=datetime(2026, 12, 2, 21, 45, tzinfo=SYDNEY))
    )
    assert "Plan it again" in str(messages.missed(run(), AUTO_START, zone=SYDNEY))
