"""Action items from people: the retrospective's "Add action item" form, ``/chaos actions`` and its Done buttons.

The core is ``bot.actions.flows.ActionItems``: the form is validated there without the database (errors go
back inside the ack); the item is stored, and filed in the backlog, after it.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, timedelta
from typing import Any

from bot.actions.flows import ActionItems, ItemView
from bot.errors import InvalidInput
from bot.interface import ids
from bot.interface.conversation import Conversation
from bot.interface.metadata import ItemRef, RunRef
from bot.interface.render import Renderer
from bot.interface.runs.forms import Submission
from bot.interface.runs.messages import Block, Message, button, context, header, plain, section
from bot.interface.surface import Request
from bot.policy.directory import RoleDirectory
from bot.words import Person, Words

DEFAULT_DUE = timedelta(days=14)
LISTED = 40  # items per /chaos actions answer: each is one block, and a message takes 50


def action_item_modal(run_label: str, ref: RunRef, today: date) -> Block:
    """What, owner (a user picker) and due date; the block ids are the core's field names."""
    return {
        "type": "modal",
        "callback_id": ids.ACTION_ITEM_SUBMIT,
        "private_metadata": ref.dump(),
        "title": plain("Add action item", 24),
        "submit": plain("Add", 24),
        "close": plain("Cancel", 24),
        "blocks": [
            section(f"A follow-up from *{run_label}*. It is tracked here and filed in the team's backlog."),
            {
                "type": "input",
                "block_id": "what",
                "label": plain("What needs doing"),
                "element": {"type": "plain_text_input", "action_id": "value", "max_length": 300},
            },
            {
                "type": "input",
                "block_id": "owner",
                "label": plain("Owner"),
                "element": {"type": "users_select", "action_id": "value"},
            },
            {
                "type": "input",
                "block_id": "due",
                "label": plain("Due"),
                "element": {
                    "type": "datepicker",
                    "action_id": "value",
                    "initial_date": (today + DEFAULT_DUE).isoformat(),
                },
            },
        ],
    }


def items_message(items: list[ItemView], say: Renderer, *, mine: bool = False) -> Message:
    """Open action items, overdue first (the core's order), each with a Done button."""
    title = "Your open action items" if mine else "Open action items"
    if not items:
        text = f"{title}: none. :tada:"
        return Message(text=text, blocks=[section(text)])
    overdue = sum(item.overdue for item in items)
    blocks: list[Block] = [header(title)]
    if overdue:
        blocks.append(context(f":rotating_light: {overdue} overdue"))
    for item in items[:LISTED]:
        blocks.append(
            section(_item_line(item, say), accessory=button("Done", ids.ITEM_DONE, ItemRef(item=item.id).dump()))
        )
    if len(items) > LISTED:
        blocks.append(context(f"… and {len(items) - LISTED} more."))
    return Message(text=f"{title}: {len(items)} ({overdue} overdue)", blocks=blocks)


def _item_line(item: ItemView, say: Renderer) -> str:
    mark = ":rotating_light: *overdue* " if item.overdue else ""
    what = f"<{item.backlog_url}|{say(item.what)}>" if item.backlog_url else say(item.what)
    owner = say(Words.of(Person(item.owner)))
    return f"{mark}*{item.label}* {what}\n{owner} · due {item.due_on:%a %d %b %Y} · from {item.run_label}"


def _selected(values: dict[str, Any], block_id: str) -> str:
    """The submitted text, user or date of an input block (the element's action id is ``value``)."""
    element = (values.get(block_id) or {}).get("value") or {}
    for key in ("selected_user", "selected_date", "value"):
        if element.get(key):
            return str(element[key])
    return ""


class ActionItemDesk:
    """Handlers for action items, registered in the shared routers by ``bot.interface.learning.desk``."""

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
        run = self.talk.lifecycle.run(run_id)
        if request.trigger_id is None:
            raise InvalidInput("Adding an action item needs a form.")
        self.talk.surface.open_modal(
            request.trigger_id, action_item_modal(run.label, RunRef(run=run.id), self.items.today())
        )

    def submit(self, request: Request, values: dict[str, Any], metadata: str) -> Submission:
        """Inside the ack: the core's checks (no database); then the item is stored and filed."""
        run_id = RunRef.load(metadata).run
        what, owner, due = _selected(values, "what"), _selected(values, "owner"), _selected(values, "due")
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
                f", due {item.due_on:%d %b %Y}).",
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
        items = self.items.open_items(owner=request.user if mine else None)
        self.talk.reply(request, items_message(items, self.talk.say, mine=mine))

    def done(self, request: Request, value: str) -> None:
        item_id = ItemRef.load(value).item
        item = self.items.done(item_id=item_id, actor=request.user, held=self.roles.roles_of(request.user))
        self.talk.tell(request, Words.of(f":white_check_mark: {item.label} is done: {item.what}"))
        self.talk.publisher.timeline(
            item.run_id, Words.of(f"Action item {item.label} marked done by ", Person(request.user), ".")
        )
