"""A ``Notifier`` that keeps every notification in memory, for the engine's tests."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

from bot.words import Words


@dataclass
class RecordingNotifier:
    """Keeps every notification in memory."""

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

    def deliver(self, run_id: int, text: Words, *, within: float) -> bool:
        self.timeline(run_id, text)
        return True

    def alert(self, run_id: int | None, text: Words) -> None:
        with self._lock:
            self.alerts.append((run_id, text))
