"""How the core tells people what happened, without knowing it is Slack (or a terminal) that listens."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Protocol

from bot.words import Words


class Notifier(Protocol):
    def run_changed(self, run_id: int, *, urgent: bool = True) -> None:
        """Re-render the run's one message in place. Non-urgent calls (progress) may be throttled."""

    def timeline(self, run_id: int, text: Words) -> None:
        """A timeline event for the run (a reply in its thread)."""

    def alert(self, run_id: int | None, text: Words) -> None:
        """Something people must act on now (a revert that failed): loud, in the channel."""


@dataclass
class RecordingNotifier:
    """Keeps every notification in memory: for tests and as the console's default."""

    changed: list[tuple[int, bool]] = field(default_factory=list)
    events: list[tuple[int, Words]] = field(default_factory=list)
    alerts: list[tuple[int | None, Words]] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def run_changed(self, run_id: int, *, urgent: bool = True) -> None:
        with self._lock:
            self.changed.append((run_id, urgent))

    def timeline(self, run_id: int, text: Words) -> None:
        with self._lock:
            self.events.append((run_id, text))

    def alert(self, run_id: int | None, text: Words) -> None:
        with self._lock:
            self.alerts.append((run_id, text))
