"""How the core tells people what happened, without knowing it is Slack (or a terminal) that listens."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Protocol


class Notifier(Protocol):
    def run_changed(self, run_id: int, *, urgent: bool = True) -> None:
        """Re-render the run's one message in place. Non-urgent calls (progress) may be throttled."""

    def timeline(self, run_id: int, text: str) -> None:
        """A timeline event for the run (a reply in its thread)."""

    def alert(self, run_id: int | None, text: str) -> None:
        """Something people must act on now (a revert that failed): loud, in the channel."""


@dataclass
class RecordingNotifier:
    """Keeps every notification in memory: for tests and as the console's default."""

    changed: list[tuple[int, bool]] = field(default_factory=list)
    events: list[tuple[int, str]] = field(default_factory=list)
    alerts: list[tuple[int | None, str]] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def run_changed(self, run_id: int, *, urgent: bool = True) -> None:
        with self._lock:
            self.changed.append((run_id, urgent))

    def timeline(self, run_id: int, text: str) -> None:
        with self._lock:
            self.events.append((run_id, text))

    def alert(self, run_id: int | None, text: str) -> None:
        with self._lock:
            self.alerts.append((run_id, text))


@dataclass
class FanOut:
    """Several notifiers as one (e.g. Slack plus the log)."""

    notifiers: list[Notifier]

    def run_changed(self, run_id: int, *, urgent: bool = True) -> None:
        for notifier in self.notifiers:
            notifier.run_changed(run_id, urgent=urgent)

    def timeline(self, run_id: int, text: str) -> None:
        for notifier in self.notifiers:
            notifier.timeline(run_id, text)

    def alert(self, run_id: int | None, text: str) -> None:
        for notifier in self.notifiers:
            notifier.alert(run_id, text)
