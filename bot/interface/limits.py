"""Slack's documented limits, and the one place that makes text and messages fit them.

Text is measured after escaping (``&`` becomes ``&amp;``), and cut only where the mrkdwn stays whole: never
inside a ``<…>`` link or mention or an ``&…;`` entity, and a ``*bold*``, ``_italic_``, ``~strike~`` or
`` `code` `` span that the cut leaves open is closed again. What was cut is said (``… (clipped)``), so nobody
mistakes a part for the whole.
"""

from __future__ import annotations

import re
from typing import Any

Block = dict[str, Any]

MESSAGE_TEXT = 40_000  # the fallback ``text`` of a message
MESSAGE_BLOCKS = 50
VIEW_BLOCKS = 100  # a modal or the App Home tab
SECTION_TEXT = 3000
FIELDS = 10
FIELD_TEXT = 2000
CONTEXT_ELEMENTS = 10
HEADER_TEXT = 150
BUTTON_TEXT = 75
BUTTON_VALUE = 2000
ID = 255  # action_id, block_id, callback_id
MODAL_TITLE = 24
MODAL_BUTTON = 24
PRIVATE_METADATA = 3000
OPTIONS = 100
OPTION_TEXT = 75
OPTION_VALUE = 150
INPUT_LABEL = 2000

CLIPPED = "… _(clipped)_"
PLAIN_CLIPPED = "…"
MARKERS = "*_~`"
_OPENS_AFTER = " \n\t([{\"'"


def clip_plain(text: str, limit: int) -> str:
    """Plain text (headers, buttons, labels) cut to ``limit`` characters, ending with an ellipsis when cut."""
    return text if len(text) <= limit else text[: limit - len(PLAIN_CLIPPED)] + PLAIN_CLIPPED


def clip_mrkdwn(text: str, limit: int = SECTION_TEXT) -> str:
    """``text`` (mrkdwn, already escaped) cut to at most ``limit`` characters on a boundary that keeps it whole."""
    if len(text) <= limit:
        return text
    budget = limit - len(CLIPPED)
    cut = _word_boundary(text, budget - len(MARKERS))  # room to close the spans it cut
    cut = _outside_tokens(text, cut)
    return _balanced(text[:cut]) + CLIPPED


def _word_boundary(text: str, budget: int) -> int:
    """The last line break or space at or before ``budget``, unless that throws most of the text away."""
    for separator in ("\n", " "):
        at = text.rfind(separator, 0, budget + 1)
        if at >= budget * 0.8:
            return at
    return budget


def _outside_tokens(text: str, cut: int) -> int:
    """Move ``cut`` back before a ``<…>`` or ``&…;`` that it would split."""
    opened = text.rfind("<", 0, cut)
    if opened != -1 and text.find(">", opened, cut) == -1:
        cut = opened
    entity = text.rfind("&", 0, cut)
    if entity != -1 and ";" not in text[entity:cut] and re.match(r"&#?\w{1,8};", text[entity:]):
        cut = entity
    return cut


def _balanced(kept: str) -> str:
    """``kept`` (already cut outside any ``<…>``) with every formatting span it opened closed again (``*bold``
    becomes ``*bold*``); a marker with nothing after it is dropped."""
    kept = kept.rstrip()
    openers = _unclosed(kept)
    while openers and openers[-1][1] == len(kept) - 1:  # "… *": an empty span, drop its marker
        kept = kept[: openers[-1][1]].rstrip()
        openers = _unclosed(kept)
    return kept + "".join(marker for marker, _ in reversed(openers))


def _unclosed(text: str) -> list[tuple[str, int]]:
    """The formatting markers that open a span which does not close, outermost first."""
    stack: list[tuple[str, int]] = []
    in_link = False
    for at, char in enumerate(text):
        if char == "<":
            in_link = True
        elif char == ">":
            in_link = False
        if in_link or char not in MARKERS:
            continue
        before = text[at - 1] if at else " "
        after = text[at + 1] if at + 1 < len(text) else " "
        if stack and stack[-1][0] == char and not before.isspace():
            stack.pop()
        elif before in _OPENS_AFTER and not after.isspace() and (char != "`" or not stack):
            stack.append((char, at))
    return stack


def fit_message(text: str, blocks: list[Block], *, limit: int = MESSAGE_BLOCKS) -> tuple[str, list[Block]]:
    """A message Slack accepts: fallback text within 40,000 characters, at most ``limit`` blocks.

    Blocks past the limit are replaced by one context line saying how many were left out, so a reader knows.
    """
    text = clip_mrkdwn(text or " ", MESSAGE_TEXT)
    if len(blocks) > limit:
        left_out = len(blocks) - (limit - 1)
        note = {"type": "context", "elements": [{"type": "mrkdwn", "text": f"_… {left_out} more blocks not shown_"}]}
        blocks = [*blocks[: limit - 1], note]
    return text, blocks
