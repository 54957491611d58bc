"""Block Kit's building blocks: the one message type and the small pieces every desk's messages are made of.

Limits kept here (Slack's documented ones): section text ≤ 3000, button text ≤ 75, header ≤ 150. This
module depends on nothing in the interface: every message builder stands on it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

Block = dict[str, Any]
SECTION_LIMIT = 3000
SECTION_BUDGET = 2900  # what ``sections`` fills a section with: under the limit, room for a heading line
LABEL_LIMIT = 2000  # an input's label and hint


@dataclass(frozen=True)
class Message:
    text: str
    blocks: list[Block] = field(default_factory=list)


def clip(text: str, limit: int = SECTION_LIMIT) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def plain(text: str, limit: int = 75) -> dict[str, Any]:
    return {"type": "plain_text", "text": clip(text, limit), "emoji": True}


def section(text: str, **extra: Any) -> Block:
    return {"type": "section", "text": {"type": "mrkdwn", "text": clip(text)}, **extra}


def context(*texts: str) -> Block:
    return {"type": "context", "elements": [{"type": "mrkdwn", "text": clip(t)} for t in texts[:10]]}


def header(text: str) -> Block:
    return {"type": "header", "text": plain(text, 150)}


def button(text: str, action_id: str, value: str, style: str | None = None, confirm: Block | None = None) -> Block:
    element: Block = {"type": "button", "text": plain(text), "action_id": action_id, "value": value}
    if style:
        element["style"] = style
    if confirm:
        element["confirm"] = confirm
    return element


def notice(text: str) -> Message:
    """A short message: one section."""
    return Message(text=text, blocks=[section(text)])


def sections(title: str, lines: Iterable[str]) -> list[Block]:
    """One or more sections of whole lines under ``title``, each within Slack's 3000-character limit."""
    blocks, current = [], title
    for line in lines:
        line = line if len(line) <= SECTION_BUDGET else line[: SECTION_BUDGET - 1] + "…"
        if len(current) + 1 + len(line) > SECTION_BUDGET:
            blocks.append(section(current))
            current = line
        else:
            current = f"{current}\n{line}"
    blocks.append(section(current))
    return blocks
