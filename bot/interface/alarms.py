"""The loud alert's "Acknowledge" button and its reminders: a revert that failed is raised again every few
minutes (``CHAOSBOT_ALERT_REPEAT_SECONDS``) until someone in the channel acknowledges it or the fault is
reverted (bot/safety/alarms.py keeps that state, audited, for every replica)."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING

from bot.interface import ids
from bot.interface.blocks import Block, Message, button, section
from bot.interface.metadata import RunRef
from bot.interface.surface import Request
from bot.safety.alarms import RevertAlarms

if TYPE_CHECKING:  # the publisher imports alarm_message from here: runtime imports would be circular
    from bot.interface.actions import Actions
    from bot.interface.conversation import Conversation

log = logging.getLogger(__name__)


def alarm_message(text: str, run_id: int | None) -> Message:
    """The loud alert: its text, and for a run an "Acknowledge" button anyone in the channel may press."""
    blocks: list[Block] = [section(text)]
    if run_id is not None:
        ack = button("Acknowledge", ids.ACKNOWLEDGE_ALARM, RunRef(run=run_id).dump())
        blocks.append({"type": "actions", "elements": [ack]})
    return Message(text=text, blocks=blocks)


@dataclass
class AlarmDesk:
    talk: Conversation
    alarms: RevertAlarms

    def register(self, actions: Actions) -> None:
        actions.routes[ids.ACKNOWLEDGE_ALARM] = self.acknowledge

    def acknowledge(self, request: Request, run_id: int) -> None:
        said = self.alarms.acknowledge(request.user, run_id)
        self.talk.publisher.timeline(run_id, said)
        self.talk.tell(request, said)

    def remind(self) -> None:
        """A periodic job: post each reminder that is due (never raises: it runs again shortly)."""
        try:
            due = self.alarms.due()
        except Exception:
            log.warning("could not read the revert alarms; trying again shortly", exc_info=True)
            return
        for alarm, words in due:
            self.talk.publisher.alert(alarm.run_id, words)
