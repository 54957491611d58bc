"""Keeps each run's one message current in the channel, and posts its timeline in the message's thread."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from zoneinfo import ZoneInfo

from bot.interface.blocks import Message, notice, run_message
from bot.interface.cards import load_card
from bot.interface.surface import Surface
from bot.runs.flows import Lifecycle
from bot.runs.models import Run

log = logging.getLogger(__name__)
PROGRESS_INTERVAL = 12.0  # seconds between progress refreshes: within chat.update's rate limit


class Publisher:
    """The Notifier the engine and handlers use. Never raises: a Slack outage must not stop a revert."""

    def __init__(
        self,
        lifecycle: Lifecycle,
        surface: Surface,
        *,
        channel: str,
        zone: ZoneInfo,
        progress_interval: float = PROGRESS_INTERVAL,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.lifecycle = lifecycle
        self.surface = surface
        self.channel = channel
        self.zone = zone
        self.progress_interval = progress_interval
        self.monotonic = monotonic
        self._last_refresh: dict[int, float] = {}
        self._locks: dict[int, threading.Lock] = {}
        self._guard = threading.Lock()

    def render(self, run_id: int) -> Message:
        card = load_card(self.lifecycle.db, self.lifecycle.policy, run_id, self.lifecycle.clock())
        return run_message(card, self.zone)

    def post_plan(self, run_id: int) -> Run:
        """Post the run's message (once) and remember where it is."""
        with self._lock_for(run_id):
            run = self.lifecycle.run(run_id)
            if run.message_ts is None:
                self._post_first(run_id)
            return self.lifecycle.run(run_id)

    def run_changed(self, run_id: int, *, urgent: bool = True) -> None:
        try:
            self._refresh(run_id, urgent)
        except Exception:
            log.exception("could not update the run message", extra={"run_id": run_id})

    def timeline(self, run_id: int, text: str) -> None:
        try:
            run = self.lifecycle.run(run_id)
            if run.channel_id and run.message_ts:
                self.surface.post(run.channel_id, notice(text), thread_ts=run.message_ts)
            else:
                self.surface.post(self.channel, notice(f"{run.label}: {text}"))
        except Exception:
            log.exception("could not post a timeline event", extra={"run_id": run_id})

    def alert(self, run_id: int | None, text: str) -> None:
        try:
            prefix = "<!here> :rotating_light: "
            channel = self.channel
            if run_id is not None:
                run = self.lifecycle.run(run_id)
                channel = run.channel_id or self.channel
            self.surface.post(channel, notice(prefix + text))
        except Exception:
            log.exception("could not post an alert", extra={"run_id": run_id})

    def _refresh(self, run_id: int, urgent: bool) -> None:
        now = self.monotonic()
        if not urgent and now - self._last_refresh.get(run_id, 0.0) < self.progress_interval:
            return
        with self._lock_for(run_id):
            run = self.lifecycle.run(run_id)
            if run.channel_id is None or run.message_ts is None:
                if urgent:  # its first post failed (bot not invited yet), or the CLI created it
                    self._post_first(run_id)
                return
            self.surface.update(run.channel_id, run.message_ts, self.render(run_id))
            self._last_refresh[run_id] = now

    def _post_first(self, run_id: int) -> None:
        """Post the run's one message and remember where it is (caller holds the run's lock)."""
        channel, ts = self.surface.post(self.channel, self.render(run_id))
        self.lifecycle.attach_message(run_id, channel_id=channel, message_ts=ts)
        self._last_refresh[run_id] = self.monotonic()

    def _lock_for(self, run_id: int) -> threading.Lock:
        with self._guard:
            return self._locks.setdefault(run_id, threading.Lock())
