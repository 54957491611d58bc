"""Action items from people: the retrospective's "Add action item" form, ``/chaos actions`` and its Done buttons.

The core is ``bot.actions.flows.ActionItems``: the form is validated there without the database (errors go
back inside the ack); the item is stored, and filed in the backlog, after it.
"""

from __future__ import annotations

from collections.abc import Callable

from bot.actions.flows import ActionItems
from bot.errors import InvalidInput
from bot.interface import fields
from bot.interface.conversation import Conversation, Submission
from bot.interface.fields import Values
from bot.interface.learning.messages import LISTED, action_item_modal, items_message
from bot.interface.metadata import ItemRef, RunRef
from bot.interface.surface import Request
from bot.policy.directory import RoleDirectory
from bot.vocabulary import format_date
from bot.words import Person, Words


class ActionItemDesk:
    """Handlers for action items: the Add action item button and form, ``/chaos actions`` and Done."""

    def __init__(
        self,
        talk: Conversation,
        items: ActionItems,
        roles: RoleDirectory,
        warm_link: Callable[[int], object] = lambda _run_id: None,
    ) -> None:
        self.talk = talk
        self.items = items
        self.roles = roles
        self.warm_link = warm_link  # the run's thread link, fetched before the item is filed

    def open_form(self, request: Request, run_id: int) -> None:
        run = self.talk.core.queries.run(run_id)
        if request.trigger_id is None:
            raise InvalidInput("Adding an action item needs a form.")
        self.talk.surface.open_modal(
            request.trigger_id, action_item_modal(run.label, RunRef(run=run.id), self.items.today())
        )

    def submit(self, request: Request, values: Values, metadata: str) -> Submission:
        """Inside the ack: the core's checks (no database); then the item is stored and filed."""
        run_id = RunRef.load(metadata).run
        what, owner, due = (fields.text(values, block) for block in ("what", "owner", "due"))
        if not due:
            raise InvalidInput("Pick a due date.", field="due")
        text, due_on = self.items.validate(what=what, owner=owner, due_on=due)

        def add() -> None:
            self.warm_link(run_id)
            item = self.items.add(run_id=run_id, what=text, owner=owner, due_on=due_on, actor=request.user)
            said = Words.of(
                f"Action item {item.label} added by ",
                Person(request.user),
                f": {item.what} (owner ",
                Person(item.owner),
                f", due {format_date(item.due_on)}).",
            )
            self.talk.publisher.timeline(run_id, said)
            where = f" Filed: {item.backlog_url}" if item.backlog_url else ""
            self.talk.tell(request, Words.of(f":memo: {item.label} is tracked; `/chaos actions` lists it.{where}"))

        return Submission(then=lambda: self.talk.guarded(request, add))

    def list(self, request: Request, args: list[str]) -> None:
        """``/chaos actions [mine]``."""
        mine = bool(args) and args[0].lower() in ("mine", "me")
        if args and not mine:
            raise InvalidInput("Use `/chaos actions` (everyone's open items) or `/chaos actions mine`.")
        owner = request.user if mine else None
        items = self.items.open_items(owner=owner, limit=LISTED)
        total, overdue = self.items.open_counts(owner=owner)
        self.talk.reply(request, items_message(items, self.talk.say, total=total, overdue=overdue, mine=mine))

    def done(self, request: Request, value: str) -> None:
        item_id = ItemRef.load(value).item
        item = self.items.done(item_id=item_id, actor=request.user, held=self.roles.roles_of(request.user))
        self.talk.tell(request, Words.of(f":white_check_mark: {item.label} is done: {item.what}"))
        self.talk.publisher.timeline(
            item.run_id, Words.of(f"Action item {item.label} marked done by ", Person(request.user), ".")
        )
