"""Button clicks, and the run actions commands share with them: approve, reject, start, cancel, abort."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import timedelta

from bot.errors import InvalidInput
from bot.interface import ids
from bot.interface.conversation import AbortOutcome, Conversation
from bot.interface.metadata import RunRef
from bot.interface.runs import messages as blocks
from bot.interface.schedule.desk import refusal_message
from bot.interface.surface import Request
from bot.schedule.gate import StartRefused
from bot.vocabulary import run_label
from bot.words import Person, Words, listing

log = logging.getLogger(__name__)
STALE = "That button is from an older chaosbot; run the command again."


class Actions:
    def __init__(self, talk: Conversation) -> None:
        self.talk = talk
        self.routes: dict[str, Callable[[Request, int], None]] = {
            ids.APPROVE: self.approve,
            ids.REJECT: self.open_reject,
            ids.START: self.start,
            ids.CANCEL: self.cancel,
            ids.ABORT: self.abort_one,
        }
        # Buttons whose value is not a RunRef (an action item's Done carries an ItemRef): given the raw value.
        self.value_routes: dict[str, Callable[[Request, str], None]] = {}

    def click(self, request: Request, action_id: str, value: str) -> None:
        """A button was clicked; in App Home the tab is then shown as it is now."""
        by_value = self.value_routes.get(action_id)
        if by_value is not None:
            self.talk.guarded(request, lambda: by_value(request, value))
            return
        handler = self.routes.get(action_id)
        if handler is None:
            log.warning("unknown action %s", action_id)
            self.talk.tell(request, STALE)
            return
        self.talk.guarded(request, lambda: handler(request, RunRef.load(value).run))
        if request.channel is None:
            self.talk.guarded(request, lambda: self.home(request.user))

    def home(self, user: str) -> None:
        talk = self.talk
        talk.surface.publish_home(user, blocks.home_view(talk.lifecycle.home(user), talk.lifecycle.zone, talk.say))

    def approve(self, request: Request, run_id: int) -> None:
        approved = self.talk.lifecycle.approve(request.user, run_id)
        run, publisher = approved.run, self.talk.publisher
        publisher.run_changed(run.id)
        publisher.timeline(run.id, Words.of("Approved by ", Person(request.user), f" as {approved.role.label}."))
        if approved.complete:
            publisher.timeline(run.id, Words.of(f"{run.label} has every approval it needs and can start."))

    def open_reject(self, request: Request, run_id: int) -> None:
        run = self.talk.lifecycle.run(run_id)
        if request.trigger_id is None:
            raise InvalidInput("Rejecting needs a form for the reason.")
        self.talk.surface.open_modal(request.trigger_id, blocks.reject_modal(run))

    def start(self, request: Request, run_id: int, *, dry_run: bool = False, duration: timedelta | None = None) -> None:
        # The engine refuses (who may, window, kill switch, rehearsal length) before any adapter work.
        try:
            self.talk.engine.start(request.user, run_id, dry_run=dry_run, duration=duration)
        except StartRefused as exc:  # an off-peak window or a freeze: a freeze offers "Start anyway"
            self.talk.reply(request, refusal_message(exc.refusal, run_id, self.talk.say))

    def cancel(self, request: Request, run_id: int, reason: str = "") -> None:
        run = self.talk.lifecycle.cancel(request.user, run_id, reason)
        self.talk.publisher.run_changed(run.id)
        said = f": {reason}" if reason else "."
        self.talk.publisher.timeline(run.id, Words.of("Cancelled by ", Person(request.user), said))

    def abort_one(self, request: Request, run_id: int, reason: str = "") -> None:
        self.talk.tell(request, _result_line(self.talk.engine.abort(request.user, run_id, reason)))

    def abort_all(self, request: Request, reason: str) -> None:
        results = self.talk.engine.abort_all(request.user, reason)
        summary = listing((_result_line(result) for result in results), "\n") or Words.of("No run was running.")
        self.talk.announce(
            Words.of(
                ":octagonal_sign: ",
                Person(request.user),
                " pulled the global kill switch",
                f" ({reason})" if reason else "",
                ". No run can start until an approver runs `/chaos resume`.\n",
                summary,
            )
        )


def _result_line(result: AbortOutcome) -> Words:
    mark = ":white_check_mark:" if result.reverted else ":x:"
    return Words.of(f"{mark} {run_label(result.run_id)}: ", result.detail)
