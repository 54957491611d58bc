"""``/chaos freeze …`` parsed into typed requests, or a usage error that says what would pass."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from bot.errors import InvalidInput
from bot.freezes.commands import AddFreeze, ListFreezes, OpenFreezeForm, RemoveFreeze, parse_freeze_command
from tests.schedule.factories import SYDNEY


def parse(text: str) -> object:
    return parse_freeze_command(text, SYDNEY)


def test_add_with_times_in_the_team_zone_and_a_reason() -> None:
    command = parse("add 2026-12-10T09:00 2026-12-10T17:00 Client delivery for ACME")
    assert isinstance(command, AddFreeze)
    request = command.request
    assert request.starts_at == datetime(2026, 12, 9, 22, 0, tzinfo=UTC)  # 09:00 AEDT
    assert request.ends_at == datetime(2026, 12, 10, 6, 0, tzinfo=UTC)
    assert request.reason == "Client delivery for ACME"
    assert request.environments == ()


def test_env_limits_the_freeze_and_may_come_anywhere_after_the_times() -> None:
    for text in (
        "add 2026-12-10T09:00 2026-12-10T17:00 --env production Client delivery",
        "add 2026-12-10T09:00 2026-12-10T17:00 Client delivery --env=Production",
        "freeze add 2026-12-10T09:00 2026-12-10T17:00 Client --env production delivery",
    ):
        command = parse(text)
        assert isinstance(command, AddFreeze)
        assert command.request.environments == ("production",)
        assert command.request.reason == "Client delivery"


def test_list_remove_and_the_form() -> None:
    assert parse("") == OpenFreezeForm()
    assert parse("freeze") == OpenFreezeForm()
    assert parse("list") == ListFreezes()
    assert parse("remove FRZ-3") == RemoveFreeze(3)
    assert parse("remove 12") == RemoveFreeze(12)


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("add 10/12/2026 2026-12-10T17:00 delivery", "'10/12/2026' is not a time; write it as YYYY-MM-DDTHH:MM"),
        ("add 2026-12-10T09:00 2026-12-10T25:00 delivery", "2026-12-10T25:00 is not a real date and time"),
        ("add 2026-02-30T09:00 2026-03-01T09:00 delivery", "2026-02-30T09:00 is not a real date and time"),
        ("add 2026-10-04T02:30 2026-10-04T06:00 delivery", "does not exist in Australia/Sydney"),
        ("add 2026-12-10T09:00 2026-12-10T17:00", "needs a reason"),
        ("add 2026-12-10T09:00", "needs a start, an end and a reason"),
        ("add 2026-12-10T09:00 2026-12-10T17:00 delivery --env", "`--env` needs an environment name"),
        ("add 2026-12-10T09:00 2026-12-10T17:00 delivery --force", "I do not know the option `--force`"),
        ("remove", "takes one freeze id"),
        ("remove the-big-one", "is not a freeze id; freeze ids look like FRZ-3"),
        ("list all", "takes nothing after it"),
        ("pause", "I do not know `freeze pause`"),
    ],
)
def test_bad_input_is_a_usage_error_naming_what_would_pass(text: str, problem: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        parse(text)
    assert problem in caught.value.message
