"""Keeps each run's one message current in the channel, and posts its timeline in the message's thread."""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from zoneinfo import ZoneInfo

from bot.interface.alarms.messages import alarm_message
from bot.interface.kit import Message, notice
from bot.interface.outbox import MESSAGE_PENDING, Outbox
from bot.interface.runs.cards import load_card
from bot.interface.runs.messages import run_message
from bot.interface.service import RunMessages, Where
from bot.interface.surface import DeliveryFailed, Surface
from bot.runs.core import RunCore
from bot.schedule.firings import error_text
from bot.vocabulary import run_label
from bot.words import Words
from storage.db import process_identity

log = logging.getLogger(__name__)
PROGRESS_INTERVAL = 12.0  # seconds between progress refreshes: within chat.update's rate limit
TRACKED_RUNS = 256  # per-run locks and refresh times kept; the least recently used beyond this are dropped
FIRST_POST_WAIT_SECONDS = 5.0  # how long a replica waits for another to post a run's message
FIRST_POST_POLL_SECONDS = 0.05


@dataclass
class _Slot:
    """What this process knows of one run's message. Read and written under the publisher's guard only: no lock
    is ever held across a Slack call or a wait, so a revert, a watcher or a renewal never waits for Slack."""

    last_refresh: float = 0.0
    posting: bool = False  # this process is posting the run's first message now
    update_after_post: bool = False  # the run changed while its first message was being posted


class Publisher:
    """The Notifier the engine and handlers use. Never raises: a Slack outage must not stop a revert."""

    def __init__(
        self,
        core: RunCore,
        surface: Surface,
        *,
        channel: str,
        zone: ZoneInfo,
        progress_interval: float = PROGRESS_INTERVAL,
        monotonic: Callable[[], float] = time.monotonic,
        tracked: int = TRACKED_RUNS,
        holder: str | None = None,
        outbox: Outbox | None = None,
    ) -> None:
        """``holder``: this process's name in the first-post claim (``storage.db.process_identity`` by default)."""
        self.core = core
        self.surface = surface
        self.say = surface.renderer
        self.messages = RunMessages(core.db)
        self.channel = channel
        self.zone = zone
        self.progress_interval = progress_interval
        self.monotonic = monotonic
        self.tracked = tracked
        self._slots: OrderedDict[int, _Slot] = OrderedDict()
        self._guard = threading.Lock()
        self._holder = holder or process_identity()  # this process, in the first-post claim
        self.outbox = outbox or Outbox()  # what Slack cannot take now is delivered later, in order (issue 10)

    @property
    def tracked_runs(self) -> int:
        """How many runs' locks and refresh times are held (at most ``tracked``)."""
        with self._guard:
            return len(self._slots)

    def render(self, run_id: int) -> Message:
        return run_message(load_card(self.core, run_id), self.zone, self.say)

    def post_plan(self, run_id: int) -> Where:
        """Post the run's message (once) and return where it is."""
        where = self.messages.find(run_id) or self._post_first(run_id)
        if where is None:
            raise RuntimeError(
                f"{run_label(run_id)}'s message is being posted by another replica, which has not finished"
            )
        return where

    def run_changed(self, run_id: int, *, urgent: bool = True) -> None:
        """Re-render the run's message. Updates of one run go out one at a time, in order (its own line in the
        outbox): a caller never waits for another caller's Slack call, it queues behind it and returns."""
        if not urgent and self.monotonic() - self._slot(run_id).last_refresh < self.progress_interval:
            return
        key = f"run-message:{run_id}"
        if not self.outbox.waits_for(key):  # one pending refresh renders the latest state anyway
            self.outbox.send(key, lambda: self._refresh_or_say_why(run_id, urgent), "run message update")

    def timeline(self, run_id: int, text: Words) -> None:
        try:
            where = self.messages.find(run_id)
            if where is not None:
                message, thread = notice(self.say(text)), where.message_ts
                self._send(where.channel_id, message, thread, "timeline event")
            else:
                self._send(self.channel, notice(f"{run_label(run_id)}: {self.say(text)}"), None, "timeline event")
        except Exception:
            log.exception("could not post a timeline event", extra={"run_id": run_id})

    def deliver(self, run_id: int, text: Words, *, within: float) -> bool:
        """A timeline event that must reach people before what follows it (a start's announcement).

        Sent from the outbox's sender, in order behind what waits for the same thread, while this caller waits
        at most ``within`` seconds. False when it was not delivered in time: it is then withdrawn (a call
        already on its way to Slack may still land; what the caller says next follows it in the thread)."""
        delivered, withdrawn = threading.Event(), threading.Event()
        where = self.messages.find(run_id)
        if where is not None:
            channel, message, thread = where.channel_id, notice(self.say(text)), where.message_ts
        else:
            channel, message, thread = self.channel, notice(f"{run_label(run_id)}: {self.say(text)}"), None

        def post() -> None:
            if not withdrawn.is_set():
                self._post(channel, message, thread)
                delivered.set()

        if not self.outbox.queue(_line(channel, thread), post, "start announcement"):
            return False
        if not delivered.wait(within):
            withdrawn.set()
        return delivered.is_set()

    def everywhere(self, where: Where, message: Message, what: str) -> None:
        """In the run's thread and in the channel, each queued behind what waits for the same place and sent
        by the outbox's sender: a scheduler firing never waits for Slack, and a Slack that took the thread's
        copy but not the channel's is retried for the channel's only (no copy is posted twice)."""
        for channel, thread in ((where.channel_id, where.message_ts), (self.channel, None)):
            self.outbox.queue(_line(channel, thread), partial(self._post, channel, message, thread), what)

    def alert(self, run_id: int | None, text: Words) -> None:
        try:
            where = self.messages.find(run_id) if run_id is not None else None
            channel = where.channel_id if where is not None else self.channel
            loud = alarm_message(f"{self.say.here} :rotating_light: {self.say(text)}", run_id)
            self._send(channel, loud, None, "alert")
        except Exception:
            log.exception("could not post an alert", extra={"run_id": run_id})

    def announce(self, text: str) -> None:
        """A message for the whole channel (already rendered: the kill switch pulled or released)."""
        self._send(self.channel, notice(text), None, "announcement")

    def whisper(self, channel: str | None, user: str, *messages: Message) -> None:
        """An answer only ``user`` sees; if Slack cannot take it now, it waits in the outbox. Each answer is its
        own line: answers to separate requests need no order, and one busy person's answers (200 plans in a
        burst) must not queue behind each other's rate-limit waits. The messages of one answer keep their order."""
        destination = f"answer:{uuid.uuid4().hex}"
        for message in messages:
            self.outbox.send(destination, partial(self.surface.ephemeral, channel, user, message), "answer")

    def close(self, *, deadline_seconds: float = 3.0) -> None:
        """Deliver what still waits in the outbox until the deadline (the runtime closes this last)."""
        self.outbox.close(deadline_seconds=deadline_seconds)

    def _send(self, channel: str, message: Message, thread_ts: str | None, what: str) -> None:
        """Post now, or after what already waits for the same channel or thread (in order)."""
        destination = _line(channel, thread_ts)
        self.outbox.send(destination, lambda: self._post(channel, message, thread_ts), what)

    def _post(self, channel: str, message: Message, thread_ts: str | None) -> None:
        self.surface.post(channel, message, thread_ts=thread_ts)

    def _refresh_or_say_why(self, run_id: int, urgent: bool) -> None:
        try:
            self._refresh(run_id, urgent)
        except DeliveryFailed as exc:
            if exc.reason != MESSAGE_PENDING:
                log.warning(
                    "could not update the run message (%s); retried from the outbox",
                    exc.reason,
                    extra={"run_id": run_id},
                )
            raise
        except Exception:
            log.warning(
                "could not update the run message; retried from the outbox", exc_info=True, extra={"run_id": run_id}
            )
            raise

    def _refresh(self, run_id: int, urgent: bool) -> None:
        now = self.monotonic()
        where = self.messages.find(run_id)
        if where is None:
            if not urgent:
                return
            # Its first post failed (bot not invited yet), the CLI created it, or someone is posting it now.
            where = self._post_or_follow(run_id)
            if where is None:
                return
        self.surface.update(where.channel_id, where.message_ts, self.render(run_id))
        self._slot(run_id).last_refresh = now

    def _post_or_follow(self, run_id: int) -> Where | None:
        """The run has no message yet: post it now, or leave this update to whoever is posting it.

        None when nothing more is to be done here (posted with the latest state, or this process's poster
        updates it once its post lands). Raises a passing refusal while another replica posts it: the outbox
        tries this update again shortly, behind nothing else of this process."""
        slot = self._slot(run_id)
        with self._guard:
            slot.update_after_post = True  # set before looking again, so the poster or this call sees it
        where = self.messages.find(run_id)
        if where is not None:
            return where
        if self.messages.claim_first_post(run_id, self._holder):
            self._post_claimed(run_id)
            return None
        with self._guard:
            if slot.posting:
                return None
        raise DeliveryFailed(MESSAGE_PENDING)

    def _post_first(self, run_id: int) -> Where | None:
        """Post the run's one message and remember where it is.

        A run planned through one replica can be clicked through another before the first has stored where
        its message is: exactly one process posts it (a claim in the database), the others wait for it.
        None when the poster has not finished within ``FIRST_POST_WAIT_SECONDS``."""
        if not self.messages.claim_first_post(run_id, self._holder):
            return self._wait_for_message(run_id)
        return self._post_claimed(run_id)

    def _post_claimed(self, run_id: int) -> Where:
        slot = self._slot(run_id)
        with self._guard:
            slot.posting, slot.update_after_post = True, False  # what changes from here on is updated after
        try:
            return self._post_and_attach(run_id)
        finally:
            with self._guard:
                again, slot.posting, slot.update_after_post = slot.update_after_post, False, False
            if again:  # the run changed while its message was on its way: show the latest state
                self.run_changed(run_id)

    def _post_and_attach(self, run_id: int) -> Where:
        try:
            channel, ts = self.surface.post(self.channel, self.render(run_id))
            self.messages.attach(run_id, channel_id=channel, message_ts=ts)
        except Exception as exc:
            try:
                self.messages.first_post_failed(run_id, self._holder, error_text(exc))
            except Exception:
                log.warning(
                    "could not give back the claim to post %s's message; it lapses by itself",
                    run_label(run_id),
                    exc_info=True,
                    extra={"run_id": run_id},
                )
            raise
        try:
            self.messages.first_post_done(run_id, self._holder)
        except Exception:  # where it is is stored, so nobody posts it again anyway
            log.warning(
                "could not mark %s's message posted; its claim lapses by itself",
                run_label(run_id),
                exc_info=True,
                extra={"run_id": run_id},
            )
        self._slot(run_id).last_refresh = self.monotonic()
        return Where(channel, ts)

    def _wait_for_message(self, run_id: int) -> Where | None:
        """Only ``post_plan`` waits (a handler that must say where the message is); it holds no lock meanwhile."""
        deadline = time.monotonic() + FIRST_POST_WAIT_SECONDS
        while (where := self.messages.find(run_id)) is None and time.monotonic() < deadline:
            time.sleep(FIRST_POST_POLL_SECONDS)
        return where

    def _slot(self, run_id: int) -> _Slot:
        with self._guard:
            slot = self._slots.pop(run_id, None) or _Slot()
            self._slots[run_id] = slot  # most recently used last
            while len(self._slots) > self.tracked:
                self._slots.popitem(last=False)
            return slot


def _line(channel: str, thread_ts: str | None) -> str:
    """The outbox line of a channel or a thread: what goes there is delivered in order."""
    return f"{channel}/{thread_ts or ''}"
