"""What a person typed or picked in a form, read from Slack's ``view.state.values`` (the console builds the same
shape). Every input block's element has the action id ``value``; its block id is the core's field name, so
an error the core raises for a field is shown on that field."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from bot.errors import InvalidInput

Values = dict[str, Any]
PICK_A_MOMENT = "Pick a date and time."


def _element(values: Values, block_id: str) -> dict[str, Any]:
    return dict((values.get(block_id) or {}).get("value") or {})


def value(values: Values, block_id: str) -> str | None:
    """The submitted value of an input block, whatever element Slack used for it (text, a select, a date,
    a date and time, a user); None when nothing was entered."""
    element = _element(values, block_id)
    if "selected_option" in element:
        return (element["selected_option"] or {}).get("value")
    for key in ("value", "selected_date_time", "selected_user", "selected_date"):
        if element.get(key) is not None:
            return str(element[key])
    return None


def text(values: Values, block_id: str) -> str:
    """A text field: what was typed, or ``""``."""
    return value(values, block_id) or ""


def ticked(values: Values, block_id: str) -> bool:
    """A one-box checkboxes field: ticked or not. A form from before the box existed had it ticked."""
    if block_id not in values:
        return True
    return bool(_element(values, block_id).get("selected_options"))


def chosen(values: Values, block_id: str) -> list[str]:
    """The values of a multi-select's options."""
    return [str(option.get("value")) for option in _element(values, block_id).get("selected_options") or []]


def moment(values: Values, block_id: str, *, problem: str = PICK_A_MOMENT) -> datetime | None:
    """A date and time picker's moment; None when none was picked, ``problem`` on the field when unreadable."""
    raw = _element(values, block_id).get("selected_date_time")
    if raw is None:
        return None
    try:
        return datetime.fromtimestamp(int(raw), tz=UTC)
    except (TypeError, ValueError):
        raise InvalidInput(problem, field=block_id) from None


def picked(values: Values, block_id: str, *, problem: str = PICK_A_MOMENT) -> datetime:
    """A date and time that must be given."""
    found = moment(values, block_id, problem=problem)
    if found is None:
        raise InvalidInput(problem, field=block_id)
    return found
