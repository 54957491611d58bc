"""What arrives from people, routed by kind: commands, button clicks, form submissions, the Home tab.

Slack's listeners and the console both call ``Handlers``. Each kind has its own module (``commands``,
``actions``, ``forms``); they share one ``Conversation`` and its ``guarded`` error path. Nothing here is
Slack-specific except the shape of Block Kit, which both render.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from bot.interface import ids
from bot.interface.conversation import AbortOutcome, Conversation, Engine
from bot.interface.publisher import Publisher
from bot.interface.runs.actions import Actions
from bot.interface.runs.commands import Commands
from bot.interface.runs.forms import Forms, Submission
from bot.interface.schedule.desk import Timing
from bot.interface.surface import Request, Surface
from bot.runs.flows import Lifecycle

__all__ = ["AbortOutcome", "Engine", "Handlers", "Submission"]


class Handlers:
    def __init__(self, lifecycle: Lifecycle, engine: Engine, surface: Surface, publisher: Publisher) -> None:
        self.talk = Conversation(lifecycle, engine, surface, publisher)
        self.actions = Actions(self.talk)
        self.commands = Commands(self.talk, self.actions)
        self.forms = Forms(self.talk)
        self.timing = Timing(self.talk)
        self.actions.routes.update(
            {
                ids.EDIT: self.timing.open_edit,
                ids.POSTPONE: self.timing.open_edit,
                ids.START_ANYWAY: self.timing.open_override,
            }
        )
        self.commands.routes["freeze"] = self.timing.command
        self.forms.routes.update(
            {ids.FREEZE_SUBMIT: self.timing.submit_freeze, ids.OVERRIDE_SUBMIT: self.timing.submit_override}
        )
        self.forms.edit_plan = self.timing.save_edit

    @property
    def lifecycle(self) -> Lifecycle:
        return self.talk.lifecycle

    @property
    def engine(self) -> Engine:
        return self.talk.engine

    @staticmethod
    def urgent(*, command: str | None = None, action_id: str | None = None) -> bool:
        """The kill switch: work that must never wait behind anything else."""
        if action_id is not None:
            return action_id == ids.ABORT
        return Commands.is_kill_switch(command or "")

    def command(self, request: Request, text: str) -> None:
        """``/chaos <text>``, after the ack."""
        self.commands.run(request, text)

    def action(self, request: Request, action_id: str, value: str) -> None:
        """A button click, after the ack."""
        self.actions.click(request, action_id, value)

    def submit(self, request: Request, callback_id: str, values: dict[str, Any], metadata: str) -> Submission:
        """A modal was submitted: field errors for the ack, or work to do after it."""
        return self.forms.submit(request, callback_id, values, metadata)

    def home(self, user: str) -> None:
        self.actions.home(user)

    def guarded(self, request: Request, work: Callable[[], None]) -> None:
        self.talk.guarded(request, work)
