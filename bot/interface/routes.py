"""The one routing table: every ``/chaos`` command, button and form, and the desk that handles it.

Adding a button, a command or a form: build its message in the desk's ``messages.py``, its handler in the
desk, its id in ``ids.py``, and one line here. Nothing else registers routes.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from bot.interface import ids
from bot.interface.alarms.desk import AlarmDesk
from bot.interface.conversation import Submission
from bot.interface.fields import Values
from bot.interface.learning.action_items import ActionItemDesk
from bot.interface.learning.summaries import ReportCommand
from bot.interface.metadata import RunRef, StartRef
from bot.interface.runs.actions import RunActions
from bot.interface.runs.commands import RunCommands
from bot.interface.runs.forms import RunForms
from bot.interface.schedule.desk import ScheduleDesk
from bot.interface.surface import Request

Command = Callable[[Request, list[str]], None]  # the words after the command's name
Click = Callable[[Request, str], None]  # the button's value, as Slack sent it
Form = Callable[[Request, Values, str], Submission]  # the form's values and its private metadata


@dataclass(frozen=True)
class Routes:
    commands: Mapping[str, Command]
    actions: Mapping[str, Click]
    forms: Mapping[str, Form]


@dataclass(frozen=True)
class Desks:
    """Every desk's handlers, built once by ``Handlers``."""

    runs: RunActions
    commands: RunCommands
    plans: RunForms
    schedule: ScheduleDesk
    items: ActionItemDesk
    report: ReportCommand
    alarms: AlarmDesk


def on_run(handler: Callable[[Request, int], None]) -> Click:
    """A button whose value is a ``RunRef``: the handler gets the run's id."""
    return lambda request, value: handler(request, RunRef.load(value).run)


def route_table(desks: Desks) -> Routes:
    runs, schedule, items = desks.runs, desks.schedule, desks.items
    return Routes(
        commands={
            "help": desks.commands.help,
            "list": desks.commands.catalogue,
            "plan": desks.commands.plan,
            "status": desks.commands.status,
            "start": desks.commands.start,
            "abort": desks.commands.abort,
            "cancel": desks.commands.cancel,
            "resume": desks.commands.resume,
            "freeze": schedule.command,
            "actions": items.list,
            "report": desks.report,
        },
        actions={
            ids.APPROVE: on_run(runs.approve),
            ids.REJECT: on_run(runs.open_reject),
            ids.START: on_run(runs.start),
            ids.CANCEL: on_run(runs.cancel),
            ids.ABORT: on_run(runs.abort_one),
            ids.EDIT: on_run(runs.open_edit),
            ids.POSTPONE: on_run(runs.open_edit),
            ids.START_ANYWAY: lambda request, value: schedule.open_override(request, StartRef.load(value)),
            ids.ADD_ACTION: on_run(items.open_form),
            ids.ITEM_DONE: items.done,  # its value is an ItemRef
            ids.ACKNOWLEDGE_ALARM: on_run(desks.alarms.acknowledge),
            ids.HOME_MORE: runs.home_page,  # its value is a HomePage
            ids.HOME_FIRST: runs.home_page,
        },
        forms={
            ids.PLAN_SUBMIT: desks.plans.plan,
            ids.REJECT_SUBMIT: desks.plans.reject,
            ids.OVERRIDE_SUBMIT: schedule.submit_override,
            ids.FREEZE_SUBMIT: schedule.submit_freeze,
            ids.ACTION_ITEM_SUBMIT: items.submit,
        },
    )
