"""The alarms desk's message: the loud alert, with an "Acknowledge" button for a run's failed revert."""

from __future__ import annotations

from bot.interface import ids
from bot.interface.kit import Block, Message, button, section
from bot.interface.metadata import RunRef


def alarm_message(text: str, run_id: int | None) -> Message:
    """The loud alert: its text, and for a run an "Acknowledge" button anyone in the channel may press."""
    blocks: list[Block] = [section(text)]
    if run_id is not None:
        ack = button("Acknowledge", ids.ACKNOWLEDGE_ALARM, RunRef(run=run_id).dump())
        blocks.append({"type": "actions", "elements": [ack]})
    return Message(text=text, blocks=blocks)
