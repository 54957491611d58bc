"""The schedule-and-freezes desk: starting inside a freeze ("Start anyway" and its form), ``/chaos freeze`` and
the freeze form. The rules are the core's (``StartGate``, ``Freezes``); this desk opens the forms, maps their
fields to the core's requests and says what happened. (Edit and Postpone open the runs desk's plan form.)
"""

from __future__ import annotations

from dataclasses import replace

from bot.errors import InvalidInput, NotPermitted
from bot.freezes.commands import AddFreeze, ListFreezes, OpenFreezeForm, RemoveFreeze, parse_freeze_command
from bot.freezes.models import Freeze
from bot.freezes.service import FreezeRequest, Freezes, check_override_reason, describe, listing_words
from bot.interface import fields
from bot.interface.conversation import Conversation, Submission
from bot.interface.fields import Values
from bot.interface.metadata import OverrideMeta, StartRef
from bot.interface.schedule.messages import freeze_modal, override_modal, refusal_message
from bot.interface.surface import Request
from bot.runs.transitions import FreezeOverride
from bot.schedule.gate import StartRefused
from bot.words import Person, Words


class ScheduleDesk:
    """Start anyway, and ``/chaos freeze``: routed in ``bot.interface.routes``."""

    def __init__(self, talk: Conversation) -> None:
        self.talk = talk

    @property
    def freezes(self) -> Freezes:
        return self.talk.core.gate.freezes

    # Start anyway

    def open_override(self, request: Request, start: StartRef) -> None:
        core = self.talk.core
        run = core.queries.run(start.run)
        refusal = core.gate.refusal(run, core.clock())
        if refusal is None:
            self.talk.tell(request, f"No window or freeze holds {run.label} back now: use Start.")
            return
        if not refusal.overridable or refusal.freeze is None:
            self.talk.reply(request, refusal_message(refusal, start, self.talk.say))
            return
        if not core.roles.is_approver(request.user):
            raise NotPermitted(f"Only an approver can start {run.label} inside {refusal.freeze.label}.")
        if request.trigger_id is None:
            raise InvalidInput("Starting anyway needs a form for the reason.")
        meta = OverrideMeta(start=start, freeze=refusal.freeze.id, channel=request.channel)
        self.talk.surface.open_modal(request.trigger_id, override_modal(run, refusal, meta, self.talk.say))

    def submit_override(self, request: Request, values: Values, metadata: str) -> Submission:
        meta = OverrideMeta.load(metadata)
        reason = check_override_reason(fields.text(values, "reason"))
        request = replace(request, channel=meta.channel)
        override = FreezeOverride(freeze_id=meta.freeze, reason=reason)

        def start() -> None:
            talk = self.talk
            freeze = self.freezes.get(meta.freeze)
            try:
                talk.engine.start(
                    request.user, meta.run, dry_run=meta.start.dry_run, duration=meta.start.duration, override=override
                )
            except StartRefused as exc:
                talk.reply(request, refusal_message(exc.refusal, meta.start, talk.say))
                return
            talk.publisher.timeline(
                meta.run,
                Words.of(
                    ":warning: Started inside a freeze by ",
                    Person(request.user),
                    " (",
                    describe(freeze, talk.publisher.zone),
                    f"). Reason: {reason}",
                ),
            )

        return Submission(then=lambda: self.talk.guarded(request, start))

    # /chaos freeze

    def command(self, request: Request, args: list[str]) -> None:
        talk, freezes = self.talk, self.freezes
        parsed = parse_freeze_command(" ".join(args), talk.core.zone)
        if isinstance(parsed, ListFreezes):
            talk.tell(request, listing_words(freezes.upcoming(), talk.core.zone, freezes.feeds()))
            return
        approver = talk.core.roles.is_approver(request.user)
        if isinstance(parsed, OpenFreezeForm):
            if not approver:
                raise NotPermitted("Only approvers can add a freeze.")
            if request.trigger_id is None:
                raise InvalidInput("The freeze form needs Slack or the console; or use `/chaos freeze add`.")
            view = freeze_modal(list(talk.core.policy.environments), talk.core.clock())
            talk.surface.open_modal(request.trigger_id, view)
        elif isinstance(parsed, AddFreeze):
            self._added(request, freezes.add(request.user, parsed.request, approver=approver))
        elif isinstance(parsed, RemoveFreeze):
            removed = freezes.remove(request.user, parsed.freeze_id, approver=approver)
            talk.announce(
                Words.of(":unlock: ", Person(request.user), " removed the freeze ", describe(removed, talk.core.zone))
            )

    def submit_freeze(self, request: Request, values: Values, _metadata: str) -> Submission:
        wanted = FreezeRequest(
            starts_at=fields.picked(values, "starts_at"),
            ends_at=fields.picked(values, "ends_at"),
            reason=fields.text(values, "reason"),
            environments=tuple(fields.chosen(values, "environments")),
        )
        valid = self.freezes.check(wanted)

        def add() -> None:
            approver = self.talk.core.roles.is_approver(request.user)
            self._added(request, self.freezes.add(request.user, valid, approver=approver))

        return Submission(then=lambda: self.talk.guarded(request, add))

    def _added(self, request: Request, freeze: Freeze) -> None:
        zone = self.talk.core.zone
        self.talk.announce(Words.of(":lock: ", Person(request.user), " added a freeze: ", describe(freeze, zone)))
