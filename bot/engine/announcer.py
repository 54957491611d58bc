"""How the engine's pieces tell people what happened; a chat outage never stops a revert or a record."""

from __future__ import annotations

import logging
from collections.abc import Callable

from bot.notify import Notifier
from bot.words import Words

log = logging.getLogger(__name__)


class Announcer:
    def __init__(self, notifier: Notifier) -> None:
        self.notifier = notifier

    def tell(self, run_id: int, words: Words, *, urgent: bool = False) -> None:
        """A timeline event; ``urgent`` also re-renders the run's message at once."""
        self.notify(lambda n: n.timeline(run_id, words))
        if urgent:
            self.notify(lambda n: n.run_changed(run_id, urgent=True))

    def delivered(self, run_id: int, words: Words, *, within: float) -> bool:
        """Tell the run's thread and wait (at most ``within`` seconds) until people can read it."""
        try:
            return self.notifier.deliver(run_id, words, within=within)
        except Exception:
            log.exception("notifier failed")
            return False

    def alert(self, run_id: int | None, words: Words) -> None:
        self.notify(lambda n: n.alert(run_id, words))

    def progressed(self, run_id: int) -> None:
        """Non-urgent, so the notifier may throttle it."""
        self.notify(lambda n: n.run_changed(run_id, urgent=False))

    def notify(self, call: Callable[[Notifier], None]) -> None:
        try:
            call(self.notifier)
        except Exception:  # a chat outage must never stop a revert or a record
            log.exception("notifier failed")
