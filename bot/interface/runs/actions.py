"""The runs desk's buttons, and the run actions its commands share with them: approve, reject, start, cancel,
abort, Edit (and the notice's Postpone, which opens the same form), and App Home."""

from __future__ import annotations

from datetime import timedelta

from bot.catalogue.models import Experiment
from bot.errors import IllegalTransition, InvalidInput, NotPermitted
from bot.interface.conversation import AbortOutcome, Conversation
from bot.interface.metadata import HomePage, PlanMeta, StartRef
from bot.interface.runs import messages
from bot.interface.schedule.messages import refusal_message
from bot.interface.surface import Request
from bot.runs.core import RunCore
from bot.runs.models import Run, RunState
from bot.schedule.gate import StartRefused
from bot.vocabulary import run_label
from bot.words import Person, Words, listing

EDITABLE = (RunState.PLANNED, RunState.APPROVED)


class RunActions:
    def __init__(self, talk: Conversation) -> None:
        self.talk = talk

    def home(self, user: str, page: int = 0) -> None:
        """Publish ``user``'s App Home, showing that page of the running runs."""
        talk = self.talk
        home = talk.core.queries.home(
            user,
            running_offset=page * messages.HOME_RUNNING,
            running=messages.HOME_RUNNING,
            listed=messages.HOME_LISTED,
        )
        talk.surface.publish_home(user, messages.home_view(home, talk.core.zone, talk.say))

    def home_page(self, request: Request, value: str) -> None:
        """**Show more** (or back to the first page) in App Home: the tab, published again at that page."""
        self.home(request.user, HomePage.load(value).page)

    def approve(self, request: Request, run_id: int) -> None:
        approved = self.talk.core.transitions.approve(request.user, run_id)
        run, publisher = approved.run, self.talk.publisher
        publisher.run_changed(run.id)
        publisher.timeline(run.id, Words.of("Approved by ", Person(request.user), f" as {approved.role.label}."))
        if approved.complete:
            publisher.timeline(run.id, Words.of(f"{run.label} has every approval it needs and can start."))

    def open_reject(self, request: Request, run_id: int) -> None:
        run = self.talk.core.queries.run(run_id)
        if request.trigger_id is None:
            raise InvalidInput("Rejecting needs a form for the reason.")
        self.talk.surface.open_modal(request.trigger_id, messages.reject_modal(run))

    def open_edit(self, request: Request, run_id: int) -> None:
        """Edit on the run's message, or Postpone on the notice before its start: the plan form, filled in."""
        core = self.talk.core
        run = core.queries.run(run_id)
        if run.run_state not in EDITABLE:
            raise IllegalTransition(_not_editable(core, run))
        if request.user != run.owner and not core.roles.is_approver(request.user):
            raise NotPermitted(
                Words.of("Only the owner (", Person(run.owner), f") or an approver can edit {run.label}.")
            )
        if request.trigger_id is None:
            raise InvalidInput("Editing needs a form; use the Edit button in Slack or the console.")
        experiment = Experiment.model_validate(run.experiment)
        meta = PlanMeta(experiment=experiment.id, channel=request.channel, run=run.id)
        view = messages.plan_modal(
            experiment,
            run.environment,
            run.planned_start,
            run.rollback_steps,
            meta,
            notes=run.notes,
            auto_start=run.auto_start,
        )
        self.talk.surface.open_modal(request.trigger_id, view)

    def start(self, request: Request, run_id: int, *, dry_run: bool = False, duration: timedelta | None = None) -> None:
        # The engine refuses (who may, window, kill switch, rehearsal length) before any adapter work.
        try:
            self.talk.engine.start(request.user, run_id, dry_run=dry_run, duration=duration)
        except StartRefused as exc:  # an off-peak window or a freeze: a freeze offers "Start anyway"
            start = StartRef.asked(run_id, dry_run=dry_run, duration=duration)
            self.talk.reply(request, refusal_message(exc.refusal, start, self.talk.say))

    def cancel(self, request: Request, run_id: int, reason: str = "") -> None:
        run = self.talk.core.transitions.cancel(request.user, run_id, reason)
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


def _not_editable(core: RunCore, run: Run) -> Words:
    if run.run_state is RunState.RUNNING:
        return Words.of(
            f"{run.label} is running: a running run cannot be edited (abort it with `/chaos abort {run.label}`)."
        )
    return core.queries.ended_sentence(run) + " An ended run cannot be edited; plan a new one."
