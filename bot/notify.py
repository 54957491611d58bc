"""How the core tells people what happened, without knowing it is Slack (or a terminal) that listens."""

from __future__ import annotations

from typing import Protocol

from bot.words import Words


class Notifier(Protocol):
    def run_changed(self, run_id: int, *, urgent: bool = True) -> None:
        """Re-render the run's one message in place. Non-urgent calls (progress) may be throttled."""

    def timeline(self, run_id: int, text: Words) -> None:
        """A timeline event for the run (a reply in its thread)."""

    def deliver(self, run_id: int, text: Words, *, within: float) -> bool:
        """A timeline event that must reach people before what follows it: True once delivered, False when it
        could not be within ``within`` seconds (then it is withdrawn). Never blocks longer than ``within``."""

    def alert(self, run_id: int | None, text: Words) -> None:
        """Something people must act on now (a revert that failed): loud, in the channel."""
