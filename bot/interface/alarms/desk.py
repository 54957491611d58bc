"""The loud alert's "Acknowledge" button and its reminders: a revert that failed is raised again every few
minutes (``CHAOSBOT_ALERT_REPEAT_SECONDS``) until someone in the channel acknowledges it or the fault is
reverted (bot/safety/alarms.py keeps that state, audited, for every replica)."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from bot.interface.conversation import Conversation
from bot.interface.surface import Request
from bot.safety.alarms import RevertAlarms

log = logging.getLogger(__name__)


@dataclass
class AlarmDesk:
    talk: Conversation
    alarms: RevertAlarms

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
