"""Block Kit's building blocks: the one message type and the small pieces every desk's messages are made of.

Slack's limits are applied here, through ``bot.interface.limits``: text is cut on boundaries that keep mrkdwn
whole and says it was cut, and a ``Message`` always fits (fallback text, 50 blocks). This module depends on
nothing in the interface but those limits: every message builder stands on it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from bot.interface.limits import (
    BUTTON_TEXT,
    CONTEXT_ELEMENTS,
    HEADER_TEXT,
    INPUT_LABEL,
    SECTION_TEXT,
    clip_mrkdwn,
    clip_plain,
    fit_message,
)

Block = dict[str, Any]
SECTION_LIMIT = SECTION_TEXT
SECTION_BUDGET = 2900  # what ``sections`` fills a section with: under the limit, room for a heading line
LABEL_LIMIT = INPUT_LABEL  # an input's label and hint


@dataclass(frozen=True)
class Message:
    """A chat message; made to fit Slack's limits when built (fallback text, number of blocks)."""

    text: str
    blocks: list[Block] = field(default_factory=list)

    def __post_init__(self) -> None:
        text, blocks = fit_message(self.text, self.blocks)
        object.__setattr__(self, "text", text)
        object.__setattr__(self, "blocks", blocks)


def plain(text: str, limit: int = BUTTON_TEXT) -> dict[str, Any]:
    return {"type": "plain_text", "text": clip_plain(text, limit), "emoji": True}


def section(text: str, **extra: Any) -> Block:
    return {"type": "section", "text": {"type": "mrkdwn", "text": clip_mrkdwn(text, SECTION_TEXT)}, **extra}


def context(*texts: str) -> Block:
    elements = [{"type": "mrkdwn", "text": clip_mrkdwn(t, SECTION_TEXT)} for t in texts[:CONTEXT_ELEMENTS]]
    return {"type": "context", "elements": elements}


def header(text: str) -> Block:
    return {"type": "header", "text": plain(text, HEADER_TEXT)}


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
        line = clip_mrkdwn(line, SECTION_BUDGET)
        if len(current) + 1 + len(line) > SECTION_BUDGET:
            blocks.append(section(current))
            current = line
        else:
            current = f"{current}\n{line}"
    blocks.append(section(current))
    return blocks
