"""Filling in a modal from the terminal: ``set FIELD VALUE`` into Slack's ``view.state.values`` shape."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime
from typing import Any
from zoneinfo import ZoneInfo

from bot.console.render import Block, Field, input_fields, text_of
from bot.vocabulary import parse_offset

_FORMATS = ("%Y-%m-%d %H:%M", "%Y-%m-%dT%H:%M", "%Y-%m-%d %H:%M:%S", "%Y-%m-%d")
REQUIRED = "Please complete this required field."


class FormError(Exception):
    """A value the form cannot take; the message is for the person typing."""


def find_field(view: Block, key: str) -> Field:
    """The input block named by number, block_id or label (case-insensitive)."""
    fields = input_fields(view)
    wanted = key.strip().lower()
    for item in fields:
        if wanted in (str(item.number), item.block_id.lower(), item.label.lower()):
            return item
    names = ", ".join(f"{item.number}={item.block_id}" for item in fields)
    raise FormError(f"No field {key!r} in this form. Fields: {names}.")


def parse_moment(raw: str, zone: ZoneInfo, now: datetime | None = None) -> int:
    """A unix timestamp from ``now``, ``+30m``, ``2026-12-01 14:00``, ``14:00`` (today) or a timestamp."""
    now = now or datetime.now(UTC)
    text = raw.strip().lower()
    if text == "now":
        return int(now.timestamp())
    if text.startswith("+"):  # +30m, +2h, +1d: the same durations as everywhere else
        try:
            return int((now + parse_offset(text[1:])).timestamp())
        except ValueError:
            raise FormError(f"Not a time from now: {raw!r}. Use +30m, +2h or +1d.") from None
    if text.isdigit() and len(text) >= 9:
        return int(text)
    if re.fullmatch(r"\d{1,2}:\d{2}", text):
        local_day = now.astimezone(zone).date().isoformat()
        text = f"{local_day} {text}"
    for fmt in _FORMATS:
        try:
            return int(datetime.strptime(text, fmt).replace(tzinfo=zone).timestamp())
        except ValueError:
            continue
    raise FormError(f"Not a date and time: {raw!r}. Use 2026-12-01 14:00 ({zone.key}), now, or +30m.")


def field_state(item: Field, raw: str, zone: ZoneInfo, now: datetime | None = None) -> dict[str, Any]:
    """The element state Slack would report after the person entered ``raw`` into ``item``."""
    value = raw.strip()
    kind = item.kind
    if kind in ("static_select", "external_select"):
        return {"type": kind, "selected_option": _option(item, value) if value else None}
    if kind == "datetimepicker":
        return {"type": kind, "selected_date_time": parse_moment(value, zone, now) if value else None}
    if kind in ("plain_text_input", "email_text_input", "url_text_input", "number_input"):
        return {"type": kind, "value": _text(item, value)}
    if kind == "users_select":  # the console's people are user ids (or demo names): @rita or rita
        return {"type": kind, "selected_user": value.lstrip("@") or None}
    if kind == "datepicker":
        return {"type": kind, "selected_date": _date(value) if value else None}
    if kind in ("checkboxes", "multi_static_select"):  # several choices: "yes"/"no" for one box, or a,b
        return {"type": kind, "selected_options": _options(item, value)}
    raise FormError(f"The console cannot fill in a {kind} field yet.")


def _options(item: Field, value: str) -> list[Block]:
    options: list[Block] = item.element.get("options", [])
    lowered = value.lower()
    if len(options) == 1 and lowered in ("yes", "y", "on", "true", "x", "no", "n", "off", "false", ""):
        return options if lowered in ("yes", "y", "on", "true", "x") else []
    if lowered in ("", "none", "-"):
        return []
    return [_option(item, part.strip()) for part in value.split(",") if part.strip()]


def _date(value: str) -> str:
    try:
        return date.fromisoformat(value).isoformat()
    except ValueError:
        raise FormError(f"Not a date: {value!r}. Use YYYY-MM-DD, such as 2026-12-24.") from None


def _option(item: Field, value: str) -> Block:
    options: list[Block] = item.element.get("options", [])
    for number, option in enumerate(options, start=1):
        if value.lower() in (str(option.get("value")).lower(), text_of(option.get("text")).lower(), str(number)):
            return option
    allowed = ", ".join(str(o.get("value")) for o in options)
    raise FormError(f"{item.label} must be one of: {allowed}.")


def _text(item: Field, value: str) -> str | None:
    if item.element.get("multiline"):
        value = value.replace("\\n", "\n")
    limit = item.element.get("max_length")
    if limit is not None and len(value) > int(limit):
        raise FormError(f"{item.label} takes at most {limit} characters (got {len(value)}).")
    return value or None


def missing_required(view: Block, values: dict[str, dict[str, Any]]) -> dict[str, str]:
    """Slack's own client-side check: every non-optional input needs a value before submit."""
    errors = {}
    for item in input_fields(view):
        if item.optional:
            continue
        state = (values.get(item.block_id) or {}).get(item.action_id) or {}
        if not any(state.get(k) not in (None, "") for k in state if k != "type"):
            errors[item.block_id] = REQUIRED
    return errors
