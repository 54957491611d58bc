"""Block Kit as plain terminal text: one renderer for messages, modals and App Home views.

Everything here is a pure function of the blocks: the shell decides where the text goes.
Buttons are numbered in reading order (``[1] Approve  [2] Reject``) and returned with the
action id and value Slack would send, so a click can dispatch exactly the same payload.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from bot.vocabulary import format_entered

Block = dict[str, Any]

EMOJI = {
    "white_check_mark": "✅",
    "heavy_check_mark": "✔",
    "x": "❌",
    "warning": "⚠️",
    "hourglass_flowing_sand": "⏳",
    "red_circle": "🔴",
    "large_green_circle": "🟢",
    "white_circle": "⚪",
    "checkered_flag": "🏁",
    "octagonal_sign": "🛑",
    "no_entry_sign": "🚫",
    "heavy_minus_sign": "\u2796",
    "zzz": "💤",
    "white_square": "⬜",
    "white_large_square": "⬜",
    "rotating_light": "🚨",
    "information_source": "\u2139\ufe0f",
    "tada": "🎉",
    "memo": "📝",
    "bar_chart": "📊",
    "clipboard": "📋",
    "pencil2": "✏️",
    "lock": "🔒",
    "unlock": "🔓",
    "no_entry": "⛔",
    "alarm_clock": "⏰",
}

_LINK = re.compile(r"<([a-z][a-z0-9+.-]*:[^>|]+)(?:\|([^>]*))?>", re.IGNORECASE)
_BOLD = re.compile(r"(?<![\w*])\*(?=\S)([^*\n]+?)(?<=\S)\*(?![\w*])")
_ITALIC = re.compile(r"(?<![\w_])_(?=\S)([^_\n]+?)(?<=\S)_(?![\w_])")
_STRIKE = re.compile(r"(?<![\w~])~(?=\S)([^~\n]+?)(?<=\S)~(?![\w~])")
_EMOJI = re.compile(r":([a-z0-9_+-]+):")

BOLD, DIM, RESET = "\033[1m", "\033[2m", "\033[0m"


@dataclass(frozen=True)
class Button:
    """A clickable element and the payload Slack would send for it."""

    number: int
    label: str
    action_id: str
    value: str
    style: str | None = None
    confirm: Block | None = None


@dataclass(frozen=True)
class Field:
    """An input block of a modal, numbered for ``set``."""

    number: int
    block_id: str
    action_id: str
    label: str
    kind: str
    optional: bool
    element: Block


@dataclass(frozen=True)
class Rendered:
    """Text for the terminal and the buttons it shows, in their numbered order."""

    text: str
    buttons: list[Button] = field(default_factory=list)


# -- inline text ----------------------------------------------------------------------------------


def emoji(name: str) -> str:
    """A unicode mark for a Slack emoji shortcode (without colons); unknown names stay as ``:name:``."""
    return EMOJI.get(name, f":{name}:")


def mrkdwn(text: str, *, color: bool = False) -> str:
    """Formatting as readable text: links, emoji and bold/italic markers converted.

    People arrive already named: the console builds its messages with a ``NameRenderer``, so there is no
    chat markup to parse back."""
    text = _LINK.sub(lambda m: f"{m.group(2)} ({m.group(1)})" if m.group(2) else m.group(1), text)
    text = _EMOJI.sub(lambda m: emoji(m.group(1)), text)
    text = _BOLD.sub(lambda m: f"{BOLD}{m.group(1)}{RESET}" if color else m.group(1), text)
    text = _ITALIC.sub(lambda m: m.group(1), text)
    return _STRIKE.sub(lambda m: m.group(1), text)


def text_of(obj: Block | None, *, color: bool = False) -> str:
    """The display text of a text object (plain_text or mrkdwn)."""
    if not obj:
        return ""
    raw = str(obj.get("text", ""))
    if obj.get("type") == "mrkdwn":
        return mrkdwn(raw, color=color)
    return _EMOJI.sub(lambda m: emoji(m.group(1)), raw)


def _dim(text: str, color: bool) -> str:
    return f"{DIM}{text}{RESET}" if color else text


def _indent(text: str, prefix: str) -> str:
    return "\n".join(prefix + line if line else prefix.rstrip() for line in text.split("\n"))


# -- blocks ---------------------------------------------------------------------------------------


def render_blocks(blocks: list[Block], *, color: bool = False, first: int = 1) -> Rendered:
    """Message, modal or Home blocks as text; buttons numbered from ``first``."""
    lines: list[str] = []
    buttons: list[Button] = []
    for block in blocks:
        text = _render_block(block, buttons, first, color)
        if text is not None:
            lines.append(text)
    return Rendered("\n".join(lines), buttons)


def _render_block(block: Block, buttons: list[Button], first: int, color: bool) -> str | None:
    kind = block.get("type")
    if kind == "header":
        title = text_of(block.get("text"))
        underline = "=" * len(title)
        return f"{BOLD}{title}{RESET}\n{underline}" if color else f"{title}\n{underline}"
    if kind == "section":
        return _section(block, buttons, first, color)
    if kind == "context":
        parts = [_context_element(e, color) for e in block.get("elements", [])]
        return _dim(_indent("  ".join(p for p in parts if p), "  » "), color)
    if kind == "actions":
        return _choices(block.get("elements", []), buttons, first) or None
    if kind == "divider":
        return "─" * 40
    if kind == "image":
        return f"[image: {block.get('alt_text', '')}]"
    if kind == "input":
        return f"{text_of(block.get('label'))}: (input)"
    return f"[{kind} block]"


def _section(block: Block, buttons: list[Button], first: int, color: bool) -> str:
    parts: list[str] = []
    if block.get("text"):
        parts.append(text_of(block["text"], color=color))
    for item in block.get("fields", []):
        parts.append(_field_line(item, color))
    accessory = block.get("accessory")
    if accessory:
        choice = _choices([accessory], buttons, first)
        if choice:
            parts.append("    " + choice)
    return "\n".join(parts)


def _field_line(item: Block, color: bool) -> str:
    """``*Label*\\nvalue`` becomes ``Label: value``; anything else is shown as it is."""
    raw = str(item.get("text", ""))
    label, newline, value = raw.partition("\n")
    if newline and item.get("type") == "mrkdwn" and re.fullmatch(r"\*[^*\n]+\*", label.strip()):
        name = label.strip()[1:-1]
        shown = mrkdwn(value, color=color).replace("\n", "\n  ")
        return f"{BOLD}{name}{RESET}: {shown}" if color else f"{name}: {shown}"
    return text_of(item, color=color)


def _context_element(element: Block, color: bool) -> str:
    if element.get("type") == "image":
        return f"[{element.get('alt_text', 'image')}]"
    return text_of(element, color=color)


def _choices(elements: list[Block], buttons: list[Button], first: int) -> str:
    shown = []
    for element in elements:
        if element.get("type") != "button":
            shown.append(f"[{element.get('type')}]")
            continue
        button = Button(
            number=first + len(buttons),
            label=text_of(element.get("text")),
            action_id=str(element.get("action_id", "")),
            value=str(element.get("value", "")),
            style=element.get("style"),
            confirm=element.get("confirm"),
        )
        buttons.append(button)
        shown.append(f"[{button.number}] {button.label}")
    return "  ".join(shown)


# -- surfaces -------------------------------------------------------------------------------------


def render_message(text: str, blocks: list[Block], *, color: bool = False) -> Rendered:
    """A message: its blocks, or its fallback text when it has none."""
    if not blocks:
        return Rendered(mrkdwn(text, color=color))
    return render_blocks(blocks, color=color)


def render_home(view: Block, *, color: bool = False) -> Rendered:
    """An App Home view."""
    return render_blocks(view.get("blocks", []), color=color)


def input_fields(view: Block) -> list[Field]:
    """A modal's input blocks, numbered from 1 in order."""
    fields: list[Field] = []
    for block in view.get("blocks", []):
        if block.get("type") != "input":
            continue
        element = block.get("element", {})
        fields.append(
            Field(
                number=len(fields) + 1,
                block_id=str(block.get("block_id", "")),
                action_id=str(element.get("action_id", "")),
                label=text_of(block.get("label")),
                kind=str(element.get("type", "")),
                optional=bool(block.get("optional", False)),
                element=element,
            )
        )
    return fields


def initial_state(view: Block) -> dict[str, dict[str, Any]]:
    """The view's ``state.values`` before anyone types: Slack's shape, from the elements' initial values."""
    return {f.block_id: {f.action_id: initial_value(f.element)} for f in input_fields(view)}


def initial_value(element: Block) -> dict[str, Any]:
    """One element's state as Slack reports it when untouched."""
    kind = element.get("type")
    if kind in ("static_select", "external_select"):
        return {"type": kind, "selected_option": element.get("initial_option")}
    if kind == "datetimepicker":
        return {"type": kind, "selected_date_time": element.get("initial_date_time")}
    if kind in ("checkboxes", "multi_static_select"):
        return {"type": kind, "selected_options": list(element.get("initial_options") or [])}
    if kind == "datepicker":
        return {"type": kind, "selected_date": element.get("initial_date")}
    if kind == "users_select":
        return {"type": kind, "selected_user": element.get("initial_user")}
    if kind == "timepicker":
        return {"type": kind, "selected_time": element.get("initial_time")}
    return {"type": kind, "value": element.get("initial_value")}


def show_value(state: Mapping[str, Any] | None, zone: ZoneInfo) -> str:
    """An element's current state as a short string (``—`` when empty)."""
    state = state or {}
    if state.get("selected_option"):
        return text_of(state["selected_option"].get("text")) or str(state["selected_option"].get("value"))
    if state.get("selected_date_time") is not None:
        return format_entered(datetime.fromtimestamp(int(state["selected_date_time"]), tz=zone), zone)
    if state.get("selected_user"):
        return f"@{state['selected_user']}"
    if "selected_options" in state:  # checkboxes: a single box reads yes/no
        chosen = [text_of(o.get("text")) or str(o.get("value")) for o in state["selected_options"] or []]
        return ", ".join(chosen) if chosen else "no"
    for key in ("selected_date", "selected_time", "value"):
        if state.get(key):
            return str(state[key])
    return "—"


def render_modal(
    view: Block,
    values: Mapping[str, Mapping[str, Any]],
    zone: ZoneInfo,
    *,
    errors: Mapping[str, str] | None = None,
    color: bool = False,
) -> str:
    """A modal: title, its text blocks, then each input numbered with its current value and any error."""
    title = text_of(view.get("title"))
    lines = [f"┌ {title}"]
    body = [b for b in view.get("blocks", []) if b.get("type") != "input"]
    if body:
        lines.append(_indent(render_blocks(body, color=color).text, "│ "))
    fields = input_fields(view)
    for item in fields:
        lines.append(_indent(_field_text(item, values, zone, errors or {}), "│ "))
    known = {item.block_id for item in fields}
    for key, problem in (errors or {}).items():
        if key not in known:
            lines.append(f"│ ⚠ {problem}")
    submit, close = text_of(view.get("submit")) or "Submit", text_of(view.get("close")) or "Cancel"
    lines.append(f"└ submit → {submit} · cancel → {close} · set FIELD VALUE to change a field")
    return "\n".join(lines)


def _field_text(item: Field, values: Mapping[str, Mapping[str, Any]], zone: ZoneInfo, errors: Mapping[str, str]) -> str:
    state = (values.get(item.block_id) or {}).get(item.action_id)
    optional = " (optional)" if item.optional else ""
    value = show_value(state, zone)
    head = f"({item.number}) {item.label}{optional} [{item.block_id}]:"
    text = f"{head} {value}" if "\n" not in value else f"{head}\n{_indent(value, '      ')}"
    if item.kind in ("static_select", "external_select"):
        options = ", ".join(str(o.get("value")) for o in item.element.get("options", []))
        text += f"\n      options: {options}"
    if item.kind == "datetimepicker":
        text += "\n      e.g. 2026-12-01 14:00, now, +30m"
    if item.block_id in errors:
        text += f"\n      ⚠ {errors[item.block_id]}"
    return text
