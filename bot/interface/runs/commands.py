"""The runs desk's ``/chaos`` commands: parse the words, call the core or the engine, answer the person."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import NoReturn

from bot.errors import InvalidInput, NotFound
from bot.interface.conversation import Conversation
from bot.interface.metadata import PlanMeta
from bot.interface.runs import messages
from bot.interface.runs.actions import RunActions
from bot.interface.surface import Request
from bot.runs.rules import default_rollback
from bot.runs.service import parse_run_id
from bot.vocabulary import parse_duration, parse_run_label
from bot.words import Person, Words

START_FORM = "Use `/chaos start RUN-n [--dry-run [--for 30s]]`."
NAMED = 10  # running runs a bare `/chaos abort` names when it cannot tell which one is meant


class RunCommands:
    """``/chaos help|list|plan|status|start|abort|cancel|resume``: parse the words, call the core or the engine."""

    def __init__(self, talk: Conversation, actions: RunActions) -> None:
        self.talk = talk
        self.actions = actions

    def help(self, request: Request, _args: list[str]) -> None:
        self.talk.reply(request, messages.usage())

    def catalogue(self, request: Request, _args: list[str]) -> None:
        self.talk.reply(request, messages.catalogue_message(self.talk.core.catalogue))

    def plan(self, request: Request, args: list[str]) -> None:
        if not args or len(args) > 2:
            usage("Which experiment? Use `/chaos plan CE-03 [environment]`.")
        core = self.talk.core
        experiment = core.rules.experiment(args[0])
        environment = core.rules.check_environment(experiment, args[1] if len(args) > 1 else None)
        if request.trigger_id is None:
            raise InvalidInput("Planning needs a form; run the command from Slack or the console.")
        meta = PlanMeta(experiment=experiment.id, channel=request.channel)
        start = _default_start(core.clock())
        view = messages.plan_modal(experiment, environment, start, default_rollback(experiment), meta)
        self.talk.surface.open_modal(request.trigger_id, view)

    def status(self, request: Request, args: list[str]) -> None:
        talk = self.talk
        if len(args) > 1:
            usage("Use `/chaos status`, `/chaos status running` or `/chaos status RUN-n`.")
        if args and args[0].lower() == "running":
            talk.reply_all(request, messages.running_messages(talk.core.queries.running_runs(), talk.say))
            return
        if args:
            talk.reply(request, talk.publisher.render(parse_run_id(args[0])))
            return
        status = talk.core.queries.status(running=messages.STATUS_RUNNING, waiting=messages.STATUS_WAITING)
        talk.reply(request, messages.status_message(status, talk.core.zone, talk.say))

    def start(self, request: Request, args: list[str]) -> None:
        words = list(args)
        duration = None
        if "--for" in words:
            at = words.index("--for")
            if at + 1 >= len(words):
                usage(f"`--for` needs a duration such as 30s or 2m. {START_FORM}")
            duration = _duration(words[at + 1])
            del words[at : at + 2]
        dry_run = "--dry-run" in words
        targets = [word for word in words if word != "--dry-run"]
        if len(targets) != 1:
            usage(f"Which run? {START_FORM}")
        self.actions.start(request, parse_run_id(targets[0]), dry_run=dry_run, duration=duration)

    def abort(self, request: Request, args: list[str]) -> None:
        if args and args[0].lower() == "all":
            self.actions.abort_all(request, " ".join(args[1:]))
            return
        if args and parse_run_label(args[0]) is not None:
            self.actions.abort_one(request, parse_run_id(args[0]), " ".join(args[1:]))
            return
        running = self.talk.core.queries.running_runs()
        if not running:
            raise NotFound("Nothing is running, so there is nothing to abort.")
        if len(running) > 1:
            labels = ", ".join(run.label for run in running[:NAMED])
            more = f" and {len(running) - NAMED} more" if len(running) > NAMED else ""
            raise InvalidInput(
                f"{len(running)} runs are running ({labels}{more}): name one (`/chaos status running` lists them "
                "all), or use `/chaos abort all`."
            )
        self.actions.abort_one(request, running[0].id, " ".join(args))

    def cancel(self, request: Request, args: list[str]) -> None:
        if not args:
            usage("Which run? Use `/chaos cancel RUN-n [reason]`.")
        self.actions.cancel(request, parse_run_id(args[0]), " ".join(args[1:]))

    def resume(self, request: Request, _args: list[str]) -> None:
        if self.talk.engine.resume(request.user):
            self.talk.announce(
                Words.of(
                    ":large_green_circle: ", Person(request.user), " released the global kill switch: runs may start."
                )
            )
        else:
            self.talk.tell(request, "The global kill switch is not engaged.")


def usage(problem: str) -> NoReturn:
    raise InvalidInput(problem)


def _duration(word: str) -> timedelta:
    try:
        return parse_duration(word)
    except ValueError:
        raise InvalidInput(f"`--for {word}` is not a duration such as 30s or 2m. {START_FORM}") from None


def _default_start(now: datetime) -> datetime:
    """The next quarter hour at least 15 minutes away: a form left open a while is not "in the past"."""
    later = now + timedelta(minutes=15)
    return later.replace(minute=later.minute - later.minute % 15, second=0, microsecond=0) + timedelta(minutes=15)
