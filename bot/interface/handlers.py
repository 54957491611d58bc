"""What arrives from people, delivered to the desk that serves it: ``/chaos`` commands, button clicks, form
submissions, the Home tab.

Slack's listeners and the console both call ``Handlers``. It builds every desk once, routes through the one
table (``bot.interface.routes``) and keeps the rules every route shares: the kill switch never waits, every
command is audited, a click in App Home refreshes the tab, a form's field error is answered inside the ack.
Nothing here is Slack-specific except the shape of Block Kit, which both render.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from bot.errors import DomainError, InvalidInput
from bot.interface import ids
from bot.interface.alarms.desk import AlarmDesk
from bot.interface.conversation import AbortOutcome, Conversation, Engine, Submission
from bot.interface.fields import Values
from bot.interface.learning.action_items import ActionItemDesk
from bot.interface.learning.desk import Learning
from bot.interface.learning.summaries import ReportCommand
from bot.interface.routes import Desks, Routes, route_table
from bot.interface.runs import messages
from bot.interface.runs.actions import RunActions
from bot.interface.runs.commands import RunCommands
from bot.interface.runs.forms import RunForms
from bot.interface.schedule.desk import ScheduleDesk
from bot.interface.surface import Request
from bot.runs.core import RunCore

__all__ = ["AbortOutcome", "Engine", "Handlers", "Submission"]

log = logging.getLogger(__name__)
STALE = "That button is from an older chaosbot; run the command again."


class Handlers:
    def __init__(self, talk: Conversation, *, learning: Learning, alarms: AlarmDesk) -> None:
        self.talk = talk
        runs = RunActions(talk)
        self.desks = Desks(
            runs=runs,
            commands=RunCommands(talk, runs),
            plans=RunForms(talk),
            schedule=ScheduleDesk(talk),
            items=ActionItemDesk(talk, learning.items, talk.core.roles, warm_link=learning.links.get),
            report=ReportCommand(talk, learning.summaries),
            alarms=alarms,
        )
        self.routes: Routes = route_table(self.desks)

    @property
    def core(self) -> RunCore:
        return self.talk.core

    @property
    def engine(self) -> Engine:
        return self.talk.engine

    @staticmethod
    def urgent(*, command: str | None = None, action_id: str | None = None) -> bool:
        """The kill switch: work that must never wait behind anything else."""
        if action_id is not None:
            return action_id == ids.ABORT
        words = (command or "").split()
        return bool(words) and words[0].lower() == "abort"

    def command(self, request: Request, text: str) -> None:
        """``/chaos <text>``, after the ack. Every command is recorded in the audit log; the kill switch's
        record is written after its revert, so an abort never waits for it."""
        words = text.split()
        name, args = (words[0].lower(), words[1:]) if words else ("help", [])
        handler = self.routes.commands.get(name)
        talk = self.talk

        def record() -> None:
            talk.core.audit.record(request.user, "command", command=f"/chaos {text}".strip()[:500])

        if handler is None:
            talk.guarded(request, record)
            talk.reply(request, messages.usage(f"`{talk.say(name)}` is not a chaosbot command."))
            return
        urgent = self.urgent(command=text)
        if not urgent:
            talk.guarded(request, record)
        talk.guarded(request, lambda: handler(request, args))
        if urgent:
            talk.guarded(request, record)

    def action(self, request: Request, action_id: str, value: str) -> None:
        """A button click, after the ack; in App Home the tab is then shown as it is now."""
        handler = self.routes.actions.get(action_id)
        if handler is None:
            log.warning("unknown action %s", action_id)
            self.talk.tell(request, STALE)
            return
        self.talk.guarded(request, lambda: handler(request, value))
        if request.channel is None and action_id not in ids.HOME_PAGES:
            self.talk.guarded(request, lambda: self.home(request.user))

    def submit(self, request: Request, callback_id: str, values: Values, metadata: str) -> Submission:
        """A modal was submitted: field errors for the ack, or work to do after it."""
        route = self.routes.forms.get(callback_id)
        if route is None:
            log.warning("unknown view submission %s", callback_id)
            return Submission()
        try:
            return route(request, values, metadata)
        except DomainError as exc:
            field = exc.field if isinstance(exc, InvalidInput) else None
            if field is not None and field in ids.FORM_FIELDS.get(callback_id, ()):
                return Submission(errors={field: self.talk.say(exc.words)})
            words = exc.words
            return Submission(then=lambda: self.talk.tell(request, words))

    def home(self, user: str) -> None:
        self.desks.runs.home(user)

    def guarded(self, request: Request, work: Callable[[], None]) -> None:
        self.talk.guarded(request, work)
