"""The rules a plan must meet: a known experiment, an allowed environment, a start in the future and inside the
environment's off-peak windows, rollback steps, bounded text. No database: fast enough to answer inside Slack's ack.

Every way a plan is made or edited (the plan form, ``/chaos plan``, the console, an edit) goes through these
rules, so each is refused the same way, with the same words.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from bot.catalogue.models import Catalogue, Experiment
from bot.errors import InvalidInput, NotFound
from bot.policy.models import Policy
from bot.runs.models import Run
from bot.schedule.gate import StartGate
from bot.vocabulary import format_duration, format_local
from storage.db import utcnow

MAX_TEXT = 2500
MAX_PLAN_AHEAD = timedelta(days=90)
PAST_TOLERANCE = timedelta(minutes=5)
NO_ROLLBACK = "A plan needs rollback steps."
NO_REASON = "A rejection needs a reason, so the owner knows what to change."


@dataclass(frozen=True)
class PlanRequest:
    experiment_id: str
    environment: str | None = None
    planned_start: datetime | None = None
    rollback_steps: str | None = None  # None: the catalogue entry's steps (or, on edit, the plan's); "" is refused
    notes: str | None = None  # None: keep what the plan has (on edit); "" clears
    # Start by itself at the planned start: only when asked (the plan form's box, ticked there by default).
    # None: no on a new plan, unchanged on an edit.
    auto_start: bool | None = None


@dataclass(frozen=True)
class ValidPlan:
    experiment: Experiment
    environment: str
    planned_start: datetime
    rollback_steps: str
    notes: str
    auto_start: bool = True


class PlanRules:
    """Validates plans, edits, rejection reasons and a start's duration; reads nothing but the catalogue,
    the policy and the clock."""

    def __init__(
        self,
        catalogue: Catalogue,
        policy: Policy,
        gate: StartGate,
        *,
        zone: ZoneInfo,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.catalogue = catalogue
        self.policy = policy
        self.gate = gate
        self.zone = zone
        self.clock = clock

    def experiment(self, experiment_id: str) -> Experiment:
        """The catalogue entry ``experiment_id``, or ``NotFound`` naming the known ones."""
        experiment = self.catalogue.get(experiment_id)
        if experiment is None:
            known = ", ".join(e.id for e in self.catalogue.experiments)
            raise NotFound(f"There is no experiment {experiment_id!r} in the catalogue. Known: {known}.")
        return experiment

    def check_plan(self, request: PlanRequest) -> ValidPlan:
        """Validate a new plan without touching the database (fast enough to answer inside Slack's ack)."""
        experiment = self.experiment(request.experiment_id)
        environment = self.check_environment(experiment, request.environment)
        return ValidPlan(
            experiment=experiment,
            environment=environment,
            planned_start=self.check_window(environment, self.check_start(request.planned_start)),
            rollback_steps=check_rollback(request.rollback_steps, default_rollback(experiment)),
            notes=check_notes(request.notes or ""),
            auto_start=bool(request.auto_start),
        )

    def check_edit(self, run: Run, request: PlanRequest) -> dict[str, object]:
        """The plan fields ``request`` gives ``run``, validated (``InvalidInput`` naming the field otherwise).

        An unchanged start may already be past (inside its window); only a new one is checked against the clock.
        A new start, or a new environment, must fall inside that environment's off-peak windows."""
        experiment = Experiment.model_validate(run.experiment)
        environment = self.check_environment(experiment, request.environment or run.environment)
        start = self.check_start(request.planned_start) if request.planned_start else run.planned_start
        if request.planned_start or environment != run.environment:
            self.check_window(environment, start)
        return {
            "environment": environment,
            "planned_start": start,
            "rollback_steps": check_rollback(request.rollback_steps, run.rollback_steps),
            "notes": check_notes(run.notes if request.notes is None else request.notes),
            "auto_start": run.auto_start if request.auto_start is None else request.auto_start,
        }

    def check_environment(self, experiment: Experiment, wanted: str | None) -> str:
        """The environment a plan of ``experiment`` runs in, or ``InvalidInput`` (field ``environment``)."""
        environment = (wanted or experiment.environments[0]).strip().lower()
        if environment not in experiment.environments:
            allowed = ", ".join(experiment.environments)
            raise InvalidInput(f"{experiment.id} may run only in: {allowed}.", field="environment")
        if environment not in self.policy.environments:
            raise InvalidInput(
                f"The approvals policy has no rules for {environment}, so nobody could approve it.",
                field="environment",
            )
        return environment

    def check_start(self, wanted: datetime | None) -> datetime:
        """A planned start (now when not given; naive times are in the team's zone): not past, at most 90 days
        ahead, or ``InvalidInput`` (field ``planned_start``)."""
        now = self.clock()
        start = wanted or now
        if start.tzinfo is None:
            start = start.replace(tzinfo=self.zone)
        if start < now - PAST_TOLERANCE:
            raise InvalidInput(f"The planned start {self.local(start)} is in the past.", field="planned_start")
        if start > now + MAX_PLAN_AHEAD:
            raise InvalidInput("Plan at most 90 days ahead.", field="planned_start")
        return start

    def check_window(self, environment: str, planned_start: datetime) -> datetime:
        """``planned_start`` if it falls inside ``environment``'s off-peak windows, else ``InvalidInput`` (field
        ``planned_start``) saying when the windows are and when the next allowed start is."""
        outside = self.gate.window_error(environment, planned_start)
        if outside is not None:
            raise InvalidInput(outside, field="planned_start")
        return planned_start

    @staticmethod
    def check_reason(reason: str) -> str:
        """A rejection's reason, trimmed, or ``InvalidInput`` (field ``reason``)."""
        return bounded(reason, "reason", required=True, empty=NO_REASON)

    def run_duration(self, run: Run, *, dry_run: bool, requested: timedelta | None) -> timedelta:
        """How long this start may keep the fault: the experiment's maximum, or less for a rehearsal."""
        maximum = Experiment.model_validate(run.experiment).max_duration
        if requested is None:
            return maximum
        if not dry_run:
            raise InvalidInput("Only a rehearsal (`--dry-run`) can be shorter than the experiment's maximum duration.")
        if not timedelta(seconds=1) <= requested <= maximum:
            raise InvalidInput(
                f"A rehearsal of {run.label} can last from 1s to its maximum, {format_duration(maximum)}."
            )
        return requested

    def local(self, moment: datetime) -> str:
        return format_local(moment, self.zone)


def default_rollback(experiment: Experiment) -> str:
    steps = [f"{i}. {step}" for i, step in enumerate(experiment.rollback_steps, start=1)]
    return "\n".join(steps)


def check_rollback(given: str | None, default: str) -> str:
    """The one rule for rollback steps: not given means the default; given but empty is refused."""
    return bounded(default if given is None else given, "rollback_steps", required=True, empty=NO_ROLLBACK)


def check_notes(notes: str) -> str:
    return bounded(notes, "notes", required=False)


def bounded(text: str | None, field: str, required: bool, empty: str | None = None) -> str:
    """``text`` trimmed; ``InvalidInput`` (naming ``field``) when required and empty, or over ``MAX_TEXT``."""
    value = (text or "").strip()
    if required and not value:
        raise InvalidInput(empty or f"{field.replace('_', ' ').capitalize()} cannot be empty.", field=field)
    if len(value) > MAX_TEXT:
        raise InvalidInput(
            f"{field.replace('_', ' ').capitalize()} is {len(value)} characters; keep it under {MAX_TEXT}.",
            field=field,
        )
    return value
