"""The run lifecycle: plan, edit, approve, reject, cancel, start, finish, expire.

Every flow is one SQL transaction that records its audit event in the same
transaction. A flow that loses a race re-reads the run and decides again, so the
loser gets a clear answer ("already approved by …") instead of a second transition.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TypeVar
from zoneinfo import ZoneInfo

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from bot.audit import service as audit
from bot.catalogue.models import Catalogue, Experiment
from bot.errors import IllegalTransition, InvalidInput, KillSwitchEngaged, NotFound, NotPermitted, RolesUnavailable
from bot.freezes.service import Freezes, append_override
from bot.policy.directory import UNAVAILABLE, RoleDirectory
from bot.policy.models import GroupMembers, Policy, Role, no_groups
from bot.policy.service import approvable_roles, role_to_credit
from bot.runs import service as runs
from bot.runs.models import Approval, Run, RunState
from bot.safety import killswitch, permissions
from bot.schedule.gate import StartGate
from bot.vocabulary import format_duration, format_local
from bot.words import SYSTEM_ACTOR, Person, Words, who
from storage.db import Database, utcnow

T = TypeVar("T")
MAX_TEXT = 2500
MAX_PLAN_AHEAD = timedelta(days=90)
PAST_TOLERANCE = timedelta(minutes=5)
_RACE_RETRIES = 5
ACTIVE = (RunState.PLANNED, RunState.APPROVED, RunState.RUNNING)
NO_ROLLBACK = "A plan needs rollback steps."
NO_REASON = "A rejection needs a reason, so the owner knows what to change."
_VERB = {RunState.COMPLETED: "complete", RunState.ABORTED: "abort", RunState.FAILED: "fail"}


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


@dataclass(frozen=True)
class FreezeOverride:
    """An approver's decision to start a run inside a freeze anyway, and why (recorded with the start)."""

    freeze_id: int
    reason: str


@dataclass(frozen=True)
class Approved:
    run: Run
    role: Role
    complete: bool


@dataclass(frozen=True)
class Status:
    """What ``/chaos status`` shows: the active runs, newest first, and the kill switch."""

    active: list[Run]
    kill_switch: bool


@dataclass(frozen=True)
class Home:
    """What one person's App Home shows."""

    kill_switch: bool
    running: list[Run]
    awaiting_you: list[tuple[Run, list[Role]]]
    upcoming: list[Run]


class Lifecycle:
    """The core's front door: Slack, the console, the CLI and the scheduler all call these methods."""

    def __init__(
        self,
        db: Database,
        catalogue: Catalogue,
        policy: Policy,
        *,
        zone: ZoneInfo,
        members_of: GroupMembers = no_groups,
        roles: RoleDirectory | None = None,
        clock: Callable[[], datetime] = utcnow,
        gate: StartGate | None = None,
    ) -> None:
        """``roles`` resolves who holds which role before any transaction; without one, a directory over
        ``members_of`` is made (not refreshed in the background: stale groups are read on demand).
        ``gate`` holds starts to the off-peak windows and freezes; without one, it is built on ``db``."""
        self.db = db
        self.catalogue = catalogue
        self.policy = policy
        self.zone = zone
        self.roles = roles or RoleDirectory(policy, members_of)
        self.clock = clock
        self.gate = gate or StartGate(policy, Freezes(db, policy, zone=zone, clock=clock), zone=zone)

    # -- reading -------------------------------------------------------------------------------

    def run(self, run_id: int) -> Run:
        """One run with its approvals."""
        with self.db.transaction() as session:
            return runs.get(session, run_id=run_id)

    def active_runs(self, *, limit: int = 50) -> list[Run]:
        """Planned, approved and running runs, newest first."""
        with self.db.transaction() as session:
            return runs.find(session, states=ACTIVE, limit=limit)

    def running_runs(self) -> list[Run]:
        with self.db.transaction() as session:
            return runs.find(session, states=[RunState.RUNNING])

    def status(self) -> Status:
        with self.db.transaction() as session:
            return Status(active=runs.find(session, states=ACTIVE), kill_switch=killswitch.state(session).engaged)

    def home(self, user: str) -> Home:
        """``user``'s App Home: what runs, what waits for their approval, what is coming."""
        with self.db.transaction() as session:
            active = runs.find(session, states=ACTIVE, limit=200)
            engaged = killswitch.state(session).engaged
        try:
            held = self.roles.roles_of(user)
        except RolesUnavailable:
            held = frozenset()  # the Home tab still shows the rest; the Approve buttons are on each run's message
        awaiting = [(run, roles) for run in active if (roles := self._awaiting(run, user, held))]
        return Home(
            kill_switch=engaged,
            running=[r for r in active if r.run_state is RunState.RUNNING],
            awaiting_you=awaiting,
            upcoming=sorted((r for r in active if r.run_state is not RunState.RUNNING), key=lambda r: r.planned_start),
        )

    def experiment(self, experiment_id: str) -> Experiment:
        experiment = self.catalogue.get(experiment_id)
        if experiment is None:
            known = ", ".join(e.id for e in self.catalogue.experiments)
            raise NotFound(f"There is no experiment {experiment_id!r} in the catalogue. Known: {known}.")
        return experiment

    def local(self, moment: datetime) -> str:
        return format_local(moment, self.zone)

    def check_environment(self, experiment: Experiment, wanted: str | None) -> str:
        """The environment a plan of ``experiment`` runs in, or ``InvalidInput`` (field ``environment``)."""
        return self._environment(experiment, wanted)

    @staticmethod
    def check_reason(reason: str) -> str:
        """A rejection's reason, trimmed, or ``InvalidInput`` (field ``reason``)."""
        return _bounded(reason, "reason", required=True, empty=NO_REASON)

    # -- planning ------------------------------------------------------------------------------

    def check_plan(self, request: PlanRequest) -> ValidPlan:
        """Validate a plan without touching the database (fast enough to answer inside Slack's ack)."""
        experiment = self.experiment(request.experiment_id)
        return ValidPlan(
            experiment=experiment,
            environment=self._environment(experiment, request.environment),
            planned_start=self._planned_start(request.planned_start),
            rollback_steps=_rollback(request.rollback_steps, default_rollback(experiment)),
            notes=_bounded(request.notes or "", "notes", required=False),
            auto_start=bool(request.auto_start),
        )

    def plan(self, actor: str, request: PlanRequest) -> Run:
        """Create a run in state planned from a catalogue entry, recording the entry's exact content."""
        valid = self.check_plan(request)
        experiment, environment, start = valid.experiment, valid.environment, valid.planned_start
        with self.db.transaction() as session:
            run = Run(
                experiment_id=experiment.id,
                experiment=experiment.snapshot(),
                experiment_hash=experiment.content_hash(),
                environment=environment,
                owner=actor,
                planned_start=start,
                rollback_steps=valid.rollback_steps,
                notes=valid.notes,
                auto_start=valid.auto_start,
                state=RunState.PLANNED.value,
            )
            session.add(run)
            session.flush()
            audit.append(
                session,
                actor=actor,
                action="run.planned",
                run_id=run.id,
                payload={
                    "experiment": experiment.id,
                    "experiment_hash": run.experiment_hash,
                    "environment": environment,
                    "planned_start": start.isoformat(),
                    "auto_start": valid.auto_start,
                },
            )
            return run

    def edit(self, actor: str, run_id: int, request: PlanRequest) -> Run:
        """Change a plan (its owner or an approver). Approvals were given to the old plan, so they are all reset.

        The audit event lists what changed (``changed``: field → [before, after]) and the approvals reset."""
        approver = self._approver_or_unknown(actor)

        def apply(session: Session) -> Run:
            run = runs.get(session, run_id=run_id)
            self._require_state(run, {RunState.PLANNED, RunState.APPROVED}, "edit")
            if run.owner != actor and not _known(approver):
                raise NotPermitted(
                    Words.of("Only the owner (", Person(run.owner), f") or an approver can edit {run.label}.")
                )
            experiment = Experiment.model_validate(run.experiment)
            changes = {
                "environment": self._environment(experiment, request.environment or run.environment),
                # An unchanged start may already be past (inside its window); only a new one is checked.
                "planned_start": (
                    self._planned_start(request.planned_start) if request.planned_start else run.planned_start
                ),
                "rollback_steps": _rollback(request.rollback_steps, run.rollback_steps),
                "notes": _bounded(run.notes if request.notes is None else request.notes, "notes", required=False),
                "auto_start": run.auto_start if request.auto_start is None else request.auto_start,
            }
            changed = {
                name: [_shown(getattr(run, name)), _shown(value)]
                for name, value in changes.items()
                if getattr(run, name) != value
            }
            changes["approved_at"] = None
            reset = [f"{a.role} by {a.user_id}" for a in run.approvals]
            for approval in list(run.approvals):
                session.delete(approval)
            session.flush()
            runs.transition(session, run=run, to=RunState.PLANNED, **changes)
            audit.append(
                session,
                actor=actor,
                action="run.edited",
                run_id=run.id,
                payload={
                    **{k: str(v) for k, v in changes.items() if v is not None},
                    "changed": changed,
                    "approvals_reset": reset,
                },
            )
            return run

        return self._retrying(apply)

    # -- approvals -----------------------------------------------------------------------------

    def approve(self, actor: str, run_id: int) -> Approved:
        held = self.roles.roles_of(actor)  # before the transaction: it may ask Slack

        def apply(session: Session) -> Approved:
            run = runs.get(session, run_id=run_id)
            self._require_state(run, {RunState.PLANNED}, "approve")
            self._require_window_open(run)
            role = role_to_credit(
                self.policy,
                run_label=run.label,
                environment=run.environment,
                owner=run.owner,
                approver=actor,
                approved=runs.approvals_by_role(run),
                held=held,
            )
            session.add(Approval(run_id=run.id, role=role.value, user_id=actor, at=self.clock()))
            session.flush()
            session.refresh(run, ["approvals"])
            complete = set(self.policy.required_roles(run.environment)) <= set(runs.approvals_by_role(run))
            if complete:
                runs.transition(session, run=run, to=RunState.APPROVED, approved_at=self.clock())
            else:
                runs.transition(session, run=run, to=RunState.PLANNED)
            audit.append(session, actor=actor, action="approval.given", run_id=run.id, payload={"role": role})
            if complete:
                audit.append(session, actor=actor, action="run.approved", run_id=run.id)
            return Approved(run=run, role=role, complete=complete)

        return self._retrying(apply)

    def roles_awaiting(self, run: Run, user: str) -> list[Role]:
        """The roles ``user`` could approve on ``run`` right now (empty unless it is planned and theirs to approve)."""
        return self._awaiting(run, user, self.roles.roles_of(user))

    def _awaiting(self, run: Run, user: str, held: frozenset[Role]) -> list[Role]:
        if run.run_state is not RunState.PLANNED:
            return []
        return approvable_roles(
            self.policy,
            environment=run.environment,
            owner=run.owner,
            approver=user,
            approved=runs.approvals_by_role(run),
            held=held,
        )

    def missing_roles(self, run: Run) -> list[Role]:
        approved = runs.approvals_by_role(run)
        return [role for role in self.policy.required_roles(run.environment) if role not in approved]

    def reject(self, actor: str, run_id: int, reason: str) -> Run:
        reason = self.check_reason(reason)
        approver = self._approver_or_unknown(actor)

        def apply(session: Session) -> Run:
            run = runs.get(session, run_id=run_id)
            self._require_state(run, {RunState.PLANNED, RunState.APPROVED}, "reject")
            if actor == run.owner:
                raise NotPermitted(f"You own {run.label}; to withdraw it, cancel it instead.")
            if not _known(approver):
                raise NotPermitted(f"Only approvers can reject {run.label}; you hold no approver role.")
            ended = {"ended_at": self.clock(), "ended_by": actor, "end_reason": reason}
            runs.transition(session, run=run, to=RunState.REJECTED, **ended)
            audit.append(session, actor=actor, action="run.rejected", run_id=run.id, payload={"reason": reason})
            return run

        return self._retrying(apply)

    def cancel(self, actor: str, run_id: int, reason: str = "") -> Run:
        approver = self._approver_or_unknown(actor)

        def apply(session: Session) -> Run:
            run = runs.get(session, run_id=run_id)
            self._require_state(run, {RunState.PLANNED, RunState.APPROVED}, "cancel")
            if actor != run.owner and not _known(approver):
                raise NotPermitted(
                    Words.of("Only the owner (", Person(run.owner), f") or an approver can cancel {run.label}.")
                )
            ended = {"ended_at": self.clock(), "ended_by": actor, "end_reason": reason.strip() or None}
            runs.transition(session, run=run, to=RunState.CANCELLED, **ended)
            audit.append(session, actor=actor, action="run.cancelled", run_id=run.id, payload={"reason": reason})
            return run

        return self._retrying(apply)

    # -- running -------------------------------------------------------------------------------

    def may_start(self, actor: str, run: Run, *, overriding: int | None = None) -> None:
        """Raise unless ``actor`` may start ``run`` now (owner, approver or the scheduler; approved; in its
        start window; inside an off-peak window; in no freeze but ``overriding``, which an approver chose).

        A window or freeze refusal is ``StartRefused`` (its ``refusal`` says whether "Start anyway" applies).
        Reads roles (maybe from Slack) and freezes: call it outside a transaction."""
        approver = self._approver_or_unknown(actor)
        self._may_start(actor, run, approver)
        if overriding is not None and not _known(approver):
            raise NotPermitted(f"Only an approver can start {run.label} inside a freeze.")
        self.gate.check(run, self.clock(), overriding=overriding)

    def _may_start(self, actor: str, run: Run, approver: bool | None) -> None:
        if actor != SYSTEM_ACTOR and actor != run.owner and not _known(approver):
            raise NotPermitted(
                Words.of("Only the owner (", Person(run.owner), f") or an approver can start {run.label}.")
            )
        self._require_state(run, {RunState.APPROVED}, "start")
        now = self.clock()
        opens = run.planned_start - self.policy.start_early
        if now < opens:
            raise IllegalTransition(
                f"{run.label} is planned for {self.local(run.planned_start)}; it can start from {self.local(opens)}."
            )
        self._require_window_open(run)

    def _require_window_open(self, run: Run) -> None:
        if self.clock() > run.planned_start + self.policy.plan_expiry:
            raise IllegalTransition(f"{run.label}'s window has passed; plan it again.")

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

    def begin(
        self,
        actor: str,
        run_id: int,
        *,
        dry_run: bool = False,
        duration: timedelta | None = None,
        override: FreezeOverride | None = None,
    ) -> Run:
        """approved → running, unless the kill switch is engaged or the run is outside its window.

        ``override`` (an approver starting inside a freeze) is audited in the same transaction as the start."""
        approver = self._approver_or_unknown(actor)
        overridden = self.gate.freezes.get(override.freeze_id) if override is not None else None

        def apply(session: Session) -> Run:
            run = runs.get(session, run_id=run_id)
            self._may_start(actor, run, approver)
            lever = killswitch.state(session)
            if lever.engaged:
                raise KillSwitchEngaged(
                    Words.of(
                        "The global kill switch is engaged (by ",
                        who(lever.changed_by or SYSTEM_ACTOR),
                        "): nothing can start until an approver runs `/chaos resume`.",
                    )
                )
            runs.transition(
                session,
                run=run,
                to=RunState.RUNNING,
                started_at=self.clock(),
                started_by=actor,
                dry_run=dry_run,
                max_duration_seconds=int(self.run_duration(run, dry_run=dry_run, requested=duration).total_seconds()),
            )
            payload = {"dry_run": dry_run, "max_duration_seconds": run.max_duration_seconds}
            if override is not None and overridden is not None:
                append_override(
                    session,
                    run_id=run.id,
                    actor=actor,
                    reason=override.reason,
                    freeze=overridden,
                    approver=_known(approver),
                )
            audit.append(session, actor=actor, action="run.started", run_id=run.id, payload=payload)
            return run

        return self._retrying(apply)

    def finish(
        self,
        actor: str,
        run_id: int,
        result: RunState,
        reason: str = "",
        *,
        also: Callable[[Session, Run], None] | None = None,
        at: datetime | None = None,
    ) -> Run:
        """running → completed | aborted | failed. Finishing a run that already ended is an error.

        ``also`` runs in the same transaction (the engine stores the outcome with the transition). ``at``: when
        the run ended, if not now (an end replayed from the spool after a database outage).
        """
        if result not in (RunState.COMPLETED, RunState.ABORTED, RunState.FAILED):
            raise ValueError(f"not a final result of a running run: {result}")

        def apply(session: Session) -> Run:
            run = runs.get(session, run_id=run_id)
            self._require_state(run, {RunState.RUNNING}, _VERB[result])
            ended = {"ended_at": at or self.clock(), "ended_by": actor, "end_reason": reason or None}
            runs.transition(session, run=run, to=result, **ended)
            audit.append(session, actor=actor, action=f"run.{result.value}", run_id=run.id, payload={"reason": reason})
            if also is not None:
                also(session, run)
            return run

        return self._retrying(apply)

    def expire_overdue(self) -> list[Run]:
        """Plans whose window passed without a start become expired (called by the scheduler)."""
        expired = []
        with self.db.transaction() as session:
            candidates = runs.find(session, states=[RunState.PLANNED, RunState.APPROVED], limit=1000)
        for candidate in candidates:
            if self.clock() > candidate.planned_start + self.policy.plan_expiry:
                try:
                    expired.append(self._expire(candidate.id))
                except IllegalTransition:
                    continue  # started or ended meanwhile
        return expired

    def _expire(self, run_id: int) -> Run:
        def apply(session: Session) -> Run:
            run = runs.get(session, run_id=run_id)
            self._require_state(run, {RunState.PLANNED, RunState.APPROVED}, "expire")
            runs.transition(session, run=run, to=RunState.EXPIRED, ended_at=self.clock(), ended_by=SYSTEM_ACTOR)
            audit.append(session, actor=SYSTEM_ACTOR, action="run.expired", run_id=run.id)
            return run

        return self._retrying(apply)

    # -- kill switch ---------------------------------------------------------------------------

    def engage_kill_switch(self, actor: str, reason: str) -> bool:
        with self.db.transaction() as session:
            changed = killswitch.set_engaged(session, engaged=True, actor=actor, reason=reason or None)
            if changed:
                audit.append(session, actor=actor, action="killswitch.engaged", payload={"reason": reason})
            return changed

    def release_kill_switch(self, actor: str) -> bool:
        permissions.require_may_resume(self.db, self.roles, actor)
        with self.db.transaction() as session:
            changed = killswitch.set_engaged(session, engaged=False, actor=actor, reason=None)
            if changed:
                audit.append(session, actor=actor, action="killswitch.released")
            return changed

    def require_may_abort(self, actor: str, run_id: int | None = None) -> None:
        """Refuse (``NotPermitted``, audited) when the policy's ``abort`` rule keeps ``actor`` from aborting."""
        permissions.require_may_abort(self.db, self.policy, self.roles, actor, run_id=run_id)

    def kill_switch_engaged(self) -> bool:
        with self.db.transaction() as session:
            return killswitch.state(session).engaged

    # -- record --------------------------------------------------------------------------------

    def record(self, actor: str, action: str, run_id: int | None = None, **payload: object) -> None:
        """Append an audit event for something that is not a transition (a command, a Slack message id)."""
        with self.db.transaction() as session:
            audit.append(session, actor=actor, action=action, run_id=run_id, payload=dict(payload))

    # -- internals -----------------------------------------------------------------------------

    def _retrying(self, apply: Callable[[Session], T]) -> T:
        for attempt in range(_RACE_RETRIES):
            try:
                with self.db.transaction() as session:
                    return apply(session)
            except (runs.StaleRun, IntegrityError):
                if attempt == _RACE_RETRIES - 1:
                    raise
        raise AssertionError("unreachable")

    def _approver_or_unknown(self, actor: str) -> bool | None:
        """Whether ``actor`` holds an approver role; None when that cannot be read now (refused only if needed)."""
        try:
            return self.roles.is_approver(actor)
        except RolesUnavailable:
            return None

    def _require_state(self, run: Run, allowed: set[RunState], action: str) -> None:
        if run.run_state in allowed:
            return
        raise IllegalTransition(self._why_not(run, action))

    def _why_not(self, run: Run, action: str) -> str | Words:
        state = run.run_state
        if state is RunState.PLANNED:
            missing = ", ".join(role.label for role in self.missing_roles(run))
            return f"{run.label} cannot {action} yet: it still needs approval from {missing}."
        if state is RunState.APPROVED:
            return f"{run.label} is already approved (since {self.local(run.approved_at or run.updated_at)})."
        if state is RunState.RUNNING:
            return Words.of(
                f"{run.label} is already running: started by ",
                who(run.started_by or SYSTEM_ACTOR),
                f" at {self.local(run.started_at or run.updated_at)}.",
            )
        return self.ended_sentence(run)

    def ended_sentence(self, run: Run) -> Words:
        """ "RUN-4 already ended: aborted by @sam at … (reason)." for a run in a final state."""
        ended = Words.of(f"{run.label} already ended: {run.state}")
        if run.ended_by:
            ended += Words.of(" by ", who(run.ended_by))
        if run.ended_at:
            ended += f" at {self.local(run.ended_at)}"
        return ended + (f" ({run.end_reason})." if run.end_reason else ".")

    def _environment(self, experiment: Experiment, wanted: str | None) -> str:
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

    def _planned_start(self, wanted: datetime | None) -> datetime:
        now = self.clock()
        start = wanted or now
        if start.tzinfo is None:
            start = start.replace(tzinfo=self.zone)
        if start < now - PAST_TOLERANCE:
            raise InvalidInput(f"The planned start {self.local(start)} is in the past.", field="planned_start")
        if start > now + MAX_PLAN_AHEAD:
            raise InvalidInput("Plan at most 90 days ahead.", field="planned_start")
        return start


def default_rollback(experiment: Experiment) -> str:
    steps = [f"{i}. {step}" for i, step in enumerate(experiment.rollback_steps, start=1)]
    return "\n".join(steps)


def _shown(value: object) -> object:
    """A plan field as the audit log records it (JSON: times as ISO 8601)."""
    return value.isoformat() if isinstance(value, datetime) else value


def _known(approver: bool | None) -> bool:
    """An approver check that was needed: unknown roles are refused with a clear "try again"."""
    if approver is None:
        raise RolesUnavailable(UNAVAILABLE)
    return approver


def _rollback(given: str | None, default: str) -> str:
    """The one rule for rollback steps: not given means the default; given but empty is refused."""
    return _bounded(default if given is None else given, "rollback_steps", required=True, empty=NO_ROLLBACK)


def _bounded(text: str | None, field: str, required: bool, empty: str | None = None) -> str:
    value = (text or "").strip()
    if required and not value:
        raise InvalidInput(empty or f"{field.replace('_', ' ').capitalize()} cannot be empty.", field=field)
    if len(value) > MAX_TEXT:
        raise InvalidInput(
            f"{field.replace('_', ' ').capitalize()} is {len(value)} characters; keep it under {MAX_TEXT}.",
            field=field,
        )
    return value
