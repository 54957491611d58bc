"""Commands, button clicks and form submissions: parse, authorise through the core, render.

Slack's listeners and the console both call these. Nothing here is Slack-specific
except the shape of Block Kit, which both render.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from bot.catalogue.models import parse_duration
from bot.errors import DomainError, InvalidInput, NotFound
from bot.interface import blocks
from bot.interface.blocks import HomeData, Message
from bot.interface.metadata import PlanMeta, RunRef
from bot.interface.publisher import Publisher
from bot.interface.surface import DeliveryFailed, Request, Surface
from bot.observability import log_context
from bot.runs import service as runs
from bot.runs.flows import Lifecycle, PlanRequest
from bot.runs.models import Run, RunState, run_label
from bot.safety import killswitch

log = logging.getLogger(__name__)
ACTIVE = [RunState.PLANNED, RunState.APPROVED, RunState.RUNNING]


class AbortOutcome(Protocol):
    run_id: int
    reverted: bool
    detail: str


class Engine(Protocol):
    def start(self, actor: str, run_id: int, *, dry_run: bool = False, duration: timedelta | None = None) -> Run: ...
    def abort(self, actor: str, run_id: int, reason: str = "") -> AbortOutcome: ...
    def abort_all(self, actor: str, reason: str = "") -> list[AbortOutcome]: ...
    def resume(self, actor: str) -> bool: ...
    def running(self) -> list[int]: ...


@dataclass(frozen=True)
class Submission:
    """The answer to a form: field errors to show inline, or work to do after the form closes."""

    errors: dict[str, str] | None = None
    then: Callable[[], None] | None = None


class Handlers:
    def __init__(
        self,
        lifecycle: Lifecycle,
        engine: Engine,
        surface: Surface,
        publisher: Publisher,
    ) -> None:
        self.lifecycle = lifecycle
        self.engine = engine
        self.surface = surface
        self.publisher = publisher
        self.zone = lifecycle.zone

    @staticmethod
    def urgent(*, command: str | None = None, action_id: str | None = None) -> bool:
        """The kill switch: work that must never wait behind anything else."""
        if action_id is not None:
            return action_id == "run.abort"
        words = (command or "").split()
        return bool(words) and words[0].lower() == "abort"

    # -- entry points ------------------------------------------------------------------------

    def command(self, request: Request, text: str) -> None:
        """``/chaos <text>``, after the ack. Every command is recorded in the audit log; the kill switch's
        record is written after its revert, so an abort never waits for it."""
        words = text.split()
        name, args = (words[0].lower(), words[1:]) if words else ("help", [])
        handler = self._commands().get(name)

        def record() -> None:
            self.lifecycle.record(request.user, "command", command=f"/chaos {text}".strip()[:500])

        if handler is None:
            self.guarded(request, record)
            self._reply(request, blocks.usage(f"`{name}` is not a chaosbot command."))
            return
        urgent = self.urgent(command=text)
        if not urgent:
            self.guarded(request, record)
        self.guarded(request, lambda: handler(request, args))
        if urgent:
            self.guarded(request, record)

    def action(self, request: Request, action_id: str, value: str) -> None:
        handler = {
            "run.approve": self._approve,
            "run.reject": self._open_reject,
            "run.start": self._start,
            "run.cancel": self._cancel,
            "run.abort": self._abort_one,
        }.get(action_id)
        if handler is None:
            log.warning("unknown action %s", action_id)
            return
        self.guarded(request, lambda: handler(request, RunRef.load(value).run))
        if request.channel is None:  # clicked in App Home: show the tab as it is now
            self.guarded(request, lambda: self.home(request.user))

    def submit(self, request: Request, callback_id: str, values: dict[str, Any], metadata: str) -> Submission:
        """A modal was submitted. Validation is pure so errors can go back inside the ack."""
        try:
            if callback_id == "plan.submit":
                return self._submit_plan(request, values, PlanMeta.load(metadata))
            if callback_id == "reject.submit":
                return self._submit_reject(request, values, RunRef.load(metadata).run)
        except InvalidInput as exc:
            return Submission(errors={exc.field or "reason": exc.message})
        except DomainError as exc:
            message = exc.message
            return Submission(then=lambda: self._reply(request, blocks.notice(message)))
        log.warning("unknown view submission %s", callback_id)
        return Submission()

    def home(self, user: str) -> None:
        self.surface.publish_home(user, blocks.home_view(self._home_data(user), self.zone))

    def guarded(self, request: Request, work: Callable[[], None]) -> None:
        """Run ``work``; a domain error becomes a message to the person, anything else an apology with an id."""
        try:
            with log_context(user=request.user):
                work()
        except DomainError as exc:
            self._reply(request, blocks.notice(f":warning: {exc.message}"))
        except DeliveryFailed as exc:
            log.warning("Slack refused a call: %s", exc.reason, extra={"user": request.user})
            self._reply(request, blocks.notice(f":warning: {_refused(exc.reason)}"))
        except Exception:
            error_id = uuid.uuid4().hex[:8]
            log.exception("unexpected error %s", error_id, extra={"user": request.user})
            self._reply(request, blocks.notice(f"Sorry, that failed on our side. Error id `{error_id}`."))

    # -- commands ----------------------------------------------------------------------------

    def _commands(self) -> dict[str, Callable[[Request, list[str]], None]]:
        return {
            "help": lambda request, _args: self._reply(request, blocks.usage()),
            "list": lambda request, _args: self._reply(request, blocks.catalogue_message(self.lifecycle.catalogue)),
            "plan": self._plan,
            "status": self._status,
            "start": self._start_command,
            "abort": self._abort_command,
            "cancel": self._cancel_command,
            "resume": self._resume,
            "freeze": self._not_yet,
            "report": self._not_yet,
        }

    def _plan(self, request: Request, args: list[str]) -> None:
        if not args or len(args) > 2:
            raise_usage("Which experiment? Use `/chaos plan CE-03 [environment]`.")
        experiment = self.lifecycle.experiment(args[0])
        environment = args[1].lower() if len(args) > 1 else experiment.environments[0]
        if environment not in experiment.environments:
            raise InvalidInput(f"{experiment.id} may run only in: {', '.join(experiment.environments)}.")
        if request.trigger_id is None:
            raise InvalidInput("Planning needs a form; run the command from Slack or the console.")
        from bot.runs.flows import default_rollback

        meta = PlanMeta(experiment=experiment.id, channel=request.channel)
        view = blocks.plan_modal(
            experiment, environment, _default_start(self.lifecycle.clock()), default_rollback(experiment), meta
        )
        self.surface.open_modal(request.trigger_id, view)

    def _status(self, request: Request, args: list[str]) -> None:
        if args:
            self._reply(request, self.publisher.render(runs.parse_run_id(args[0])))
            return
        with self.lifecycle.db.transaction() as session:
            active = runs.find(session, states=ACTIVE)
            engaged = killswitch.state(session).engaged
        self._reply(request, blocks.status_message(active, self.zone, engaged))

    def _start_command(self, request: Request, args: list[str]) -> None:
        form = "Use `/chaos start RUN-n [--dry-run [--for 30s]]`."
        words = list(args)
        duration = None
        if "--for" in words:
            at = words.index("--for")
            if at + 1 >= len(words):
                raise_usage(f"`--for` needs a duration such as 30s or 2m. {form}")
            try:
                duration = parse_duration(words[at + 1])
            except ValueError:
                raise InvalidInput(f"`--for {words[at + 1]}` is not a duration such as 30s or 2m. {form}") from None
            del words[at : at + 2]
        dry_run = "--dry-run" in words
        targets = [word for word in words if word != "--dry-run"]
        if len(targets) != 1:
            raise_usage(f"Which run? {form}")
        self._start(request, runs.parse_run_id(targets[0]), dry_run=dry_run, duration=duration)

    def _abort_command(self, request: Request, args: list[str]) -> None:
        if args and args[0].lower() == "all":
            self._abort_all(request, " ".join(args[1:]))
            return
        if args and _looks_like_run(args[0]):
            self._abort_one(request, runs.parse_run_id(args[0]), " ".join(args[1:]))
            return
        running = self._running()
        if not running:
            raise NotFound("Nothing is running, so there is nothing to abort.")
        if len(running) > 1:
            labels = ", ".join(run.label for run in running)
            raise InvalidInput(f"Several runs are running ({labels}): name one, or use `/chaos abort all`.")
        self._abort_one(request, running[0].id, " ".join(args))

    def _cancel_command(self, request: Request, args: list[str]) -> None:
        if not args:
            raise_usage("Which run? Use `/chaos cancel RUN-n [reason]`.")
        self._cancel(request, runs.parse_run_id(args[0]), " ".join(args[1:]))

    def _resume(self, request: Request, _args: list[str]) -> None:
        if self.engine.resume(request.user):
            self._announce(f":large_green_circle: <@{request.user}> released the global kill switch: runs may start.")
        else:
            self._reply(request, blocks.notice("The global kill switch is not engaged."))

    def _not_yet(self, request: Request, _args: list[str]) -> None:
        self._reply(request, blocks.notice("That command is not available yet."))

    # -- run actions -------------------------------------------------------------------------

    def _approve(self, request: Request, run_id: int) -> None:
        approved = self.lifecycle.approve(request.user, run_id)
        run = approved.run
        self.publisher.run_changed(run.id)
        self.publisher.timeline(run.id, f"Approved by <@{request.user}> as {approved.role.label}.")
        if approved.complete:
            self.publisher.timeline(run.id, f"{run.label} has every approval it needs and can start.")

    def _open_reject(self, request: Request, run_id: int) -> None:
        run = self.lifecycle.run(run_id)
        if request.trigger_id is None:
            raise InvalidInput("Rejecting needs a form for the reason.")
        self.surface.open_modal(request.trigger_id, blocks.reject_modal(run))

    def _start(
        self, request: Request, run_id: int, *, dry_run: bool = False, duration: timedelta | None = None
    ) -> None:
        # The engine refuses (who may, window, kill switch, rehearsal length) before any adapter work.
        self.engine.start(request.user, run_id, dry_run=dry_run, duration=duration)

    def _cancel(self, request: Request, run_id: int, reason: str = "") -> None:
        run = self.lifecycle.cancel(request.user, run_id, reason)
        self.publisher.run_changed(run.id)
        self.publisher.timeline(run.id, f"Cancelled by <@{request.user}>" + (f": {reason}" if reason else "."))

    def _abort_one(self, request: Request, run_id: int, reason: str = "") -> None:
        result = self.engine.abort(request.user, run_id, reason)
        mark = ":white_check_mark:" if result.reverted else ":x:"
        self._reply(request, blocks.notice(f"{mark} {run_label(run_id)}: {result.detail}"))

    def _abort_all(self, request: Request, reason: str) -> None:
        results = self.engine.abort_all(request.user, reason)
        lines = [f"{':white_check_mark:' if r.reverted else ':x:'} {run_label(r.run_id)}: {r.detail}" for r in results]
        summary = "\n".join(lines) or "No run was running."
        self._announce(
            f":octagonal_sign: <@{request.user}> pulled the global kill switch"
            + (f" ({reason})" if reason else "")
            + f". No run can start until an approver runs `/chaos resume`.\n{summary}"
        )

    # -- forms -------------------------------------------------------------------------------

    def _submit_plan(self, request: Request, values: dict[str, Any], meta: PlanMeta) -> Submission:
        request = replace(request, channel=meta.channel)  # answer where `/chaos plan` was typed
        plan = PlanRequest(
            experiment_id=meta.experiment,
            environment=_field(values, "environment"),
            planned_start=_moment(_field(values, "planned_start")),
            rollback_steps=_field(values, "rollback_steps") or "",
            notes=_field(values, "notes") or "",
        )
        if not (plan.rollback_steps or "").strip():
            raise InvalidInput("A plan needs rollback steps.", field="rollback_steps")
        self.lifecycle.check_plan(plan)

        def create() -> None:
            run = self.lifecycle.plan(request.user, plan)
            channel = self.publisher.channel
            try:
                posted = self.publisher.post_plan(run.id)
            except DeliveryFailed as exc:
                log.warning("could not post the plan of %s: %s", run.label, exc.reason, extra={"run_id": run.id})
                self._reply(request, blocks.notice(_unposted(run.label, channel, exc.reason)))
                return
            self.publisher.timeline(run.id, f"Planned by <@{request.user}>. Approvers: use the buttons above.")
            where = _channel_link(posted.channel_id or channel)
            self._reply(request, blocks.notice(f":clipboard: {run.label} is planned; its approvals happen in {where}."))

        return Submission(then=lambda: self.guarded(request, create))

    def _submit_reject(self, request: Request, values: dict[str, Any], run_id: int) -> Submission:
        reason = (_field(values, "reason") or "").strip()
        if not reason:
            raise InvalidInput("A rejection needs a reason.", field="reason")

        def reject() -> None:
            run = self.lifecycle.reject(request.user, run_id, reason)
            self.publisher.run_changed(run.id)
            self.publisher.timeline(run.id, f"Rejected by <@{request.user}>: {reason}")

        return Submission(then=lambda: self.guarded(request, reject))

    # -- helpers -----------------------------------------------------------------------------

    def _reply(self, request: Request, message: Message) -> None:
        self.surface.ephemeral(request.channel, request.user, message)

    def _announce(self, text: str) -> None:
        self.surface.post(self.publisher.channel, blocks.notice(text))

    def _running(self) -> list[Run]:
        with self.lifecycle.db.transaction() as session:
            return runs.find(session, states=[RunState.RUNNING])

    def _home_data(self, user: str) -> HomeData:
        with self.lifecycle.db.transaction() as session:
            active = runs.find(session, states=ACTIVE, limit=200)
            engaged = killswitch.state(session).engaged
        awaiting = [(run, roles) for run in active if (roles := self.lifecycle.roles_awaiting(run, user))]
        return HomeData(
            kill_switch=engaged,
            running=[r for r in active if r.run_state is RunState.RUNNING],
            awaiting_you=awaiting,
            upcoming=sorted((r for r in active if r.run_state is not RunState.RUNNING), key=lambda r: r.planned_start),
        )


def _refused(reason: str) -> str:
    if reason == "expired_trigger_id":
        return "Slack's form link expired before I could open the form; run the command again."
    return f"Slack refused that ({reason}). Try again; if it keeps failing, tell the chaosbot admins."


def _channel_link(channel: str) -> str:
    return channel if channel.startswith("#") else f"<#{channel}>"


def _unposted(label: str, channel: str, reason: str) -> str:
    return (
        f":warning: {label} is planned, but I could not post it in {_channel_link(channel)} ({reason}). "
        f"Invite me there with `/invite @chaosbot`: the plan appears there on its next change, "
        f"or run `/chaos status {label}` to see it now."
    )


def raise_usage(problem: str) -> None:
    raise InvalidInput(problem)


def _looks_like_run(word: str) -> bool:
    try:
        runs.parse_run_id(word)
    except NotFound:
        return False
    return True


def _default_start(now: datetime) -> datetime:
    """The next quarter hour at least 15 minutes away: a form left open a while is not "in the past"."""
    later = now + timedelta(minutes=15)
    return later.replace(minute=later.minute - later.minute % 15, second=0, microsecond=0) + timedelta(minutes=15)


def _field(values: dict[str, Any], block_id: str) -> str | None:
    """The submitted value of an input block, whatever element Slack used for it."""
    element = (values.get(block_id) or {}).get("value") or {}
    if "selected_option" in element:
        return (element["selected_option"] or {}).get("value")
    for key in ("value", "selected_date_time"):
        if element.get(key) is not None:
            return str(element[key])
    return None


def _moment(raw: str | None) -> datetime | None:
    if raw is None:
        return None
    try:
        return datetime.fromtimestamp(int(raw), tz=UTC)
    except ValueError:
        raise InvalidInput("Pick a date and time for the planned start.", field="planned_start") from None
