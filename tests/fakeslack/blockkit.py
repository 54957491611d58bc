"""Block Kit validation with the limits Slack enforces server-side.

Errors read like Slack's own: ``"<problem> [json-pointer:/blocks/0/text/text]"``.
Our checks cover the blocks and elements chaosbot uses field by field; slack_sdk's model validators
(``Block.parse(...).to_dict()``) then run on each block we found no fault in, which covers the
remaining block types (rich_text, video, table, ...) without duplicating their rules here.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Callable
from typing import Any, Literal

from slack_sdk.errors import SlackObjectFormationError
from slack_sdk.models.blocks import Block
from slack_sdk.models.views import View

Surface = Literal["message", "modal", "home"]
JSON = dict[str, Any]

MAX_BLOCKS: dict[str, int] = {"message": 50, "modal": 100, "home": 100}

SELECTS = frozenset({"static_select", "external_select", "users_select", "conversations_select", "channels_select"})
MULTI_SELECTS = frozenset(f"multi_{kind}" for kind in SELECTS)
_MENUS = SELECTS | MULTI_SELECTS
ACTIONS_ELEMENTS = _MENUS | {
    "button",
    "checkboxes",
    "datepicker",
    "datetimepicker",
    "overflow",
    "radio_buttons",
    "timepicker",
    "workflow_button",
}
ACCESSORY_ELEMENTS = _MENUS | {
    "button",
    "checkboxes",
    "datepicker",
    "image",
    "overflow",
    "radio_buttons",
    "timepicker",
    "workflow_button",
}
INPUT_ELEMENTS = _MENUS | {
    "checkboxes",
    "datepicker",
    "datetimepicker",
    "email_text_input",
    "file_input",
    "number_input",
    "plain_text_input",
    "radio_buttons",
    "rich_text_input",
    "timepicker",
    "url_text_input",
}
CONTEXT_ELEMENTS = frozenset({"image", "plain_text", "mrkdwn"})
MESSAGE_ONLY_BLOCKS = frozenset({"file", "markdown", "table"})
_PLACEHOLDER_ELEMENTS = INPUT_ELEMENTS - {"checkboxes", "radio_buttons", "file_input"}
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
_TIME = re.compile(r"([01]\d|2[0-3]):[0-5]\d")


def _sdk_block_types() -> frozenset[str]:
    def walk(cls: type) -> list[type]:
        return [sub for child in cls.__subclasses__() for sub in (child, *walk(child))]

    return frozenset(t for cls in walk(Block) if isinstance(t := getattr(cls, "type", None), str))


KNOWN_BLOCKS = _sdk_block_types() | {"section", "divider", "header", "context", "actions", "input", "image"}


def validate_blocks(blocks: Any, *, surface: Surface, pointer: str = "/blocks") -> list[str]:
    """Return readable errors for a message/modal/home ``blocks`` array; an empty list means valid."""
    checker = _Checker(surface)
    checker.blocks(blocks, pointer)
    return checker.errors


def validate_view(view: Any) -> list[str]:
    """Return readable errors for a modal or home tab view payload; an empty list means valid."""
    if not isinstance(view, dict):
        return ["must be a JSON object [json-pointer:/view]"]
    kind = view.get("type")
    if kind not in ("modal", "home"):
        return [f"type must be 'modal' or 'home', got {kind!r} [json-pointer:/view/type]"]
    checker = _Checker("home" if kind == "home" else "modal")
    if kind == "modal":
        _modal_fields(checker, view)
    checker.string(view, "private_metadata", "/view", limit=3000)
    checker.string(view, "callback_id", "/view", limit=255)
    checker.string(view, "external_id", "/view", limit=255)
    checker.blocks(view.get("blocks"), "/view/blocks")
    if not checker.errors:
        checker.errors.extend(_sdk_view_problems(view))
    return checker.errors


def _sdk_view_problems(view: JSON) -> list[str]:
    """slack_sdk's own ``View`` model, the way Slack's SDK checks a view before sending it."""
    try:
        View(**copy.deepcopy(view)).validate_json()
    except SlackObjectFormationError as error:
        return [f"slack_sdk: {error} [json-pointer:/view]"]
    except (TypeError, ValueError, KeyError, AttributeError):
        return []  # constructor errors are the SDK's Python API, not Slack's rules
    return []


def _modal_fields(c: _Checker, view: JSON) -> None:
    c.text(view.get("title"), "/view/title", limit=24, plain=True)
    for key in ("submit", "close"):
        if key in view:
            c.text(view[key], f"/view/{key}", limit=24, plain=True)
    blocks = view.get("blocks")
    has_input = isinstance(blocks, list) and any(isinstance(b, dict) and b.get("type") == "input" for b in blocks)
    if has_input and "submit" not in view:
        c.fail("/view", "submit is required when the view contains an input block")


class _Checker:
    def __init__(self, surface: Surface) -> None:
        self.surface = surface
        self.errors: list[str] = []
        self.block_ids: set[str] = set()

    def fail(self, pointer: str, problem: str) -> None:
        self.errors.append(f"{problem} [json-pointer:{pointer}]")

    # -- primitives -------------------------------------------------------------------------------

    def string(self, obj: JSON, key: str, at: str, *, limit: int, required: bool = False) -> None:
        value = obj.get(key)
        if value is None:
            if required:
                self.fail(at, f"missing required field: {key}")
            return
        if not isinstance(value, str):
            self.fail(f"{at}/{key}", "must be a string")
        elif len(value) > limit:
            self.fail(f"{at}/{key}", f"must be at most {limit} characters (got {len(value)})")

    def text(self, obj: Any, at: str, *, limit: int | None, plain: bool = False) -> None:
        if not isinstance(obj, dict):
            self.fail(at, "missing or invalid text object")
            return
        allowed = ("plain_text",) if plain else ("plain_text", "mrkdwn")
        if obj.get("type") not in allowed:
            self.fail(f"{at}/type", f"must be {' or '.join(allowed)}, got {obj.get('type')!r}")
        value = obj.get("text")
        if not isinstance(value, str) or not value:
            self.fail(f"{at}/text", "must be a non-empty string")
        elif limit is not None and len(value) > limit:
            self.fail(f"{at}/text", f"must be at most {limit} characters (got {len(value)})")

    def items(self, obj: JSON, key: str, at: str, *, low: int, high: int) -> list[Any]:
        value = obj.get(key)
        if not isinstance(value, list):
            self.fail(at, f"missing required array: {key}")
            return []
        if not low <= len(value) <= high:
            self.fail(f"{at}/{key}", f"must have between {low} and {high} items (got {len(value)})")
        return value

    def flag(self, obj: JSON, key: str, at: str) -> None:
        if key in obj and not isinstance(obj[key], bool):
            self.fail(f"{at}/{key}", "must be a boolean")

    # -- blocks -----------------------------------------------------------------------------------

    def blocks(self, blocks: Any, at: str) -> None:
        if not isinstance(blocks, list):
            self.fail(at, "must be an array of blocks")
            return
        limit = MAX_BLOCKS[self.surface]
        if len(blocks) > limit:
            self.fail(at, f"no more than {limit} items allowed (got {len(blocks)})")
        for i, block in enumerate(blocks):
            self.block(block, f"{at}/{i}")

    def block(self, block: Any, at: str) -> None:
        if not isinstance(block, dict) or not isinstance(block.get("type"), str):
            self.fail(at, "block must be an object with a string type")
            return
        kind = block["type"]
        if kind not in KNOWN_BLOCKS:
            self.fail(f"{at}/type", f"unsupported block type {kind!r}")
            return
        if kind in MESSAGE_ONLY_BLOCKS and self.surface != "message":
            self.fail(f"{at}/type", f"{kind} blocks are only allowed in messages")
        before = len(self.errors)
        self.block_id(block, at)
        check = _BLOCK_CHECKS.get(kind)
        if check is not None:
            check(self, block, at)
        if len(self.errors) == before:
            for problem in _sdk_problems(block):
                self.fail(at, problem)

    def block_id(self, block: JSON, at: str) -> None:
        self.string(block, "block_id", at, limit=255)
        block_id = block.get("block_id")
        if isinstance(block_id, str):
            if block_id in self.block_ids:
                self.fail(f"{at}/block_id", f"duplicate block_id {block_id!r}")
            self.block_ids.add(block_id)

    # -- elements ---------------------------------------------------------------------------------

    def element(self, element: Any, at: str, allowed: frozenset[str]) -> None:
        if not isinstance(element, dict) or not isinstance(element.get("type"), str):
            self.fail(at, "element must be an object with a string type")
            return
        kind = element["type"]
        if kind not in allowed:
            self.fail(f"{at}/type", f"element type {kind!r} is not allowed here")
            return
        self.string(element, "action_id", at, limit=255)
        if "confirm" in element:
            self.confirm(element["confirm"], f"{at}/confirm")
        if kind in _PLACEHOLDER_ELEMENTS and "placeholder" in element:
            self.text(element["placeholder"], f"{at}/placeholder", limit=150, plain=True)
        check = _ELEMENT_CHECKS.get(kind)
        if check is not None:
            check(self, element, at)

    def confirm(self, dialog: Any, at: str) -> None:
        if not isinstance(dialog, dict):
            self.fail(at, "confirm must be an object")
            return
        self.text(dialog.get("title"), f"{at}/title", limit=100, plain=True)
        self.text(dialog.get("text"), f"{at}/text", limit=300)
        self.text(dialog.get("confirm"), f"{at}/confirm", limit=30, plain=True)
        self.text(dialog.get("deny"), f"{at}/deny", limit=30, plain=True)
        self.style(dialog, at)

    def style(self, obj: JSON, at: str) -> None:
        if "style" in obj and obj["style"] not in ("primary", "danger"):
            self.fail(f"{at}/style", f"must be 'primary' or 'danger', got {obj['style']!r}")

    def options(self, obj: JSON, key: str, at: str, *, low: int, high: int, plain: bool, url: bool) -> None:
        for i, option in enumerate(self.items(obj, key, at, low=low, high=high)):
            self.option(option, f"{at}/{key}/{i}", plain=plain, url=url)

    def option(self, option: Any, at: str, *, plain: bool, url: bool = False) -> None:
        if not isinstance(option, dict):
            self.fail(at, "option must be an object")
            return
        self.text(option.get("text"), f"{at}/text", limit=75, plain=plain)
        self.string(option, "value", at, limit=150, required=True)
        if "description" in option:
            self.text(option["description"], f"{at}/description", limit=75, plain=plain)
        if "url" in option and not url:
            self.fail(f"{at}/url", "url is only allowed on overflow menu options")
        self.string(option, "url", at, limit=3000)


def _sdk_problems(block: JSON) -> list[str]:
    try:
        parsed = Block.parse(copy.deepcopy(block))
        if parsed is not None:
            parsed.to_dict()
    except SlackObjectFormationError as error:
        return [f"slack_sdk: {error}"]
    except (TypeError, ValueError, KeyError, AttributeError):
        # Constructor errors are slack_sdk's Python API, not Slack's rules; our own checks own shape problems.
        return []
    return []


# -- block checks -------------------------------------------------------------------------------


def _section(c: _Checker, block: JSON, at: str) -> None:
    if "text" not in block and "fields" not in block:
        c.fail(at, "section requires text or fields")
    if "text" in block:
        c.text(block["text"], f"{at}/text", limit=3000)
    if "fields" in block:
        for i, field in enumerate(c.items(block, "fields", at, low=1, high=10)):
            c.text(field, f"{at}/fields/{i}", limit=2000)
    if "accessory" in block:
        c.element(block["accessory"], f"{at}/accessory", ACCESSORY_ELEMENTS)
    c.flag(block, "expand", at)


def _header(c: _Checker, block: JSON, at: str) -> None:
    c.text(block.get("text"), f"{at}/text", limit=150, plain=True)


def _context(c: _Checker, block: JSON, at: str) -> None:
    for i, element in enumerate(c.items(block, "elements", at, low=1, high=10)):
        where = f"{at}/elements/{i}"
        if isinstance(element, dict) and element.get("type") in ("plain_text", "mrkdwn"):
            c.text(element, where, limit=None)
        else:
            c.element(element, where, CONTEXT_ELEMENTS)


def _actions(c: _Checker, block: JSON, at: str) -> None:
    seen: set[str] = set()
    for i, element in enumerate(c.items(block, "elements", at, low=1, high=25)):
        c.element(element, f"{at}/elements/{i}", ACTIONS_ELEMENTS)
        action_id = element.get("action_id") if isinstance(element, dict) else None
        if isinstance(action_id, str):
            if action_id in seen:
                c.fail(f"{at}/elements/{i}/action_id", f"duplicate action_id {action_id!r} in block")
            seen.add(action_id)


def _input(c: _Checker, block: JSON, at: str) -> None:
    c.text(block.get("label"), f"{at}/label", limit=2000, plain=True)
    if "hint" in block:
        c.text(block["hint"], f"{at}/hint", limit=2000, plain=True)
    if "element" not in block:
        c.fail(at, "missing required field: element")
    else:
        c.element(block["element"], f"{at}/element", INPUT_ELEMENTS)
    c.flag(block, "optional", at)
    c.flag(block, "dispatch_action", at)
    element = block.get("element")
    if block.get("dispatch_action") and isinstance(element, dict) and element.get("type") == "file_input":
        c.fail(f"{at}/dispatch_action", "dispatch_action is not supported with file_input")


def _image_source(c: _Checker, obj: JSON, at: str) -> None:
    if "image_url" not in obj and "slack_file" not in obj:
        c.fail(at, "image requires image_url or slack_file")
    c.string(obj, "image_url", at, limit=3000)
    c.string(obj, "alt_text", at, limit=2000, required=True)


def _image_block(c: _Checker, block: JSON, at: str) -> None:
    _image_source(c, block, at)
    if "title" in block:
        c.text(block["title"], f"{at}/title", limit=2000, plain=True)


def _markdown(c: _Checker, block: JSON, at: str) -> None:
    c.string(block, "text", at, limit=12000, required=True)


_BLOCK_CHECKS: dict[str, Callable[[_Checker, JSON, str], None]] = {
    "section": _section,
    "header": _header,
    "context": _context,
    "actions": _actions,
    "input": _input,
    "image": _image_block,
    "markdown": _markdown,
}


# -- element checks -----------------------------------------------------------------------------


def _button(c: _Checker, element: JSON, at: str) -> None:
    c.text(element.get("text"), f"{at}/text", limit=75, plain=True)
    c.string(element, "value", at, limit=2000)
    c.string(element, "url", at, limit=3000)
    c.string(element, "accessibility_label", at, limit=75)
    c.style(element, at)


def _workflow_button(c: _Checker, element: JSON, at: str) -> None:
    c.text(element.get("text"), f"{at}/text", limit=75, plain=True)
    if not isinstance(element.get("workflow"), dict):
        c.fail(at, "missing required field: workflow")
    c.style(element, at)


def _static_select(c: _Checker, element: JSON, at: str) -> None:
    has_options, has_groups = "options" in element, "option_groups" in element
    if has_options == has_groups:
        c.fail(at, "exactly one of options or option_groups is required")
    if has_options:
        c.options(element, "options", at, low=1, high=100, plain=True, url=False)
    if has_groups:
        for i, group in enumerate(c.items(element, "option_groups", at, low=1, high=100)):
            _option_group(c, group, f"{at}/option_groups/{i}")
    for i, option in enumerate(element.get("initial_options") or []):
        c.option(option, f"{at}/initial_options/{i}", plain=True)
    if "initial_option" in element:
        c.option(element["initial_option"], f"{at}/initial_option", plain=True)
    _max_selected(c, element, at)


def _option_group(c: _Checker, group: Any, at: str) -> None:
    if not isinstance(group, dict):
        c.fail(at, "option group must be an object")
        return
    c.text(group.get("label"), f"{at}/label", limit=75, plain=True)
    c.options(group, "options", at, low=1, high=100, plain=True, url=False)


def _max_selected(c: _Checker, element: JSON, at: str) -> None:
    value = element.get("max_selected_items")
    if value is not None and (not isinstance(value, int) or value < 1):
        c.fail(f"{at}/max_selected_items", "must be an integer of at least 1")


def _overflow(c: _Checker, element: JSON, at: str) -> None:
    c.options(element, "options", at, low=2, high=5, plain=True, url=True)


def _choices(c: _Checker, element: JSON, at: str) -> None:
    c.options(element, "options", at, low=1, high=10, plain=False, url=False)


def _plain_text_input(c: _Checker, element: JSON, at: str) -> None:
    low, high = element.get("min_length"), element.get("max_length")
    if low is not None and (not isinstance(low, int) or not 0 <= low <= 3000):
        c.fail(f"{at}/min_length", "must be an integer between 0 and 3000")
    if high is not None and (not isinstance(high, int) or not 1 <= high <= 3000):
        c.fail(f"{at}/max_length", "must be an integer between 1 and 3000")
    if isinstance(low, int) and isinstance(high, int) and low > high:
        c.fail(f"{at}/min_length", "must not exceed max_length")
    c.string(element, "initial_value", at, limit=high if isinstance(high, int) else 3000)
    c.flag(element, "multiline", at)


def _datepicker(c: _Checker, element: JSON, at: str) -> None:
    value = element.get("initial_date")
    if value is not None and not (isinstance(value, str) and _DATE.fullmatch(value)):
        c.fail(f"{at}/initial_date", "must be formatted YYYY-MM-DD")


def _timepicker(c: _Checker, element: JSON, at: str) -> None:
    value = element.get("initial_time")
    if value is not None and not (isinstance(value, str) and _TIME.fullmatch(value)):
        c.fail(f"{at}/initial_time", "must be formatted HH:mm (24-hour)")


def _datetimepicker(c: _Checker, element: JSON, at: str) -> None:
    value = element.get("initial_date_time")
    if value is not None and (not isinstance(value, int) or value < 0):
        c.fail(f"{at}/initial_date_time", "must be a UNIX timestamp in seconds")


def _number_input(c: _Checker, element: JSON, at: str) -> None:
    if not isinstance(element.get("is_decimal_allowed"), bool):
        c.fail(at, "missing required boolean: is_decimal_allowed")


_ELEMENT_CHECKS: dict[str, Callable[[_Checker, JSON, str], None]] = {
    "button": _button,
    "workflow_button": _workflow_button,
    "static_select": _static_select,
    "multi_static_select": _static_select,
    "overflow": _overflow,
    "checkboxes": _choices,
    "radio_buttons": _choices,
    "plain_text_input": _plain_text_input,
    "datepicker": _datepicker,
    "timepicker": _timepicker,
    "datetimepicker": _datetimepicker,
    "number_input": _number_input,
    "image": _image_source,
    **{kind: _max_selected for kind in MULTI_SELECTS - {"multi_static_select"}},
}
