"""The run's state changes: plan, edit, approve, reject, cancel, start, finish, expire.

Every change is one SQL transaction that records its audit event in the same transaction. A change that loses a
race re-reads the run and decides again (``storage.db.retrying``), so the loser gets a clear answer ("already
approved by …") instead of a second transition.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TypeVar
from zoneinfo import ZoneInfo

from sqlalchemy.orm import Session

from bot.audit import service as audit
from bot.errors import IllegalTransition, KillSwitchEngaged, NotPermitted, RolesUnavailable
from bot.freezes.service import append_override
from bot.policy.directory import UNAVAILABLE, RoleDirectory
from bot.policy.models import Policy, Role
from bot.policy.service import role_to_credit
from bot.runs import service as runs
from bot.runs.models import RAN, Approval, Run, RunState
from bot.runs.queries import ended_sentence, missing_roles
from bot.runs.rules import PlanRequest, PlanRules
from bot.safety import killswitch
from bot.schedule.gate import StartGate
from bot.tracing import span
from bot.vocabulary import format_local
from bot.words import SYSTEM_ACTOR, Person, Words, who
from storage.db import Database, retrying, utcnow

T = TypeVar("T")
_VERB = {RunState.COMPLETED: "complete", RunState.ABORTED: "abort", RunState.FAILED: "fail"}


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


class RunTransitions:
    """Every change of a run's state, each checked, audited and race-safe. Slack, the console, the CLI, the
    scheduler and the engine all change runs through these methods."""

    def __init__(
        self,
        db: Database,
        policy: Policy,
        rules: PlanRules,
        roles: RoleDirectory,
        gate: StartGate,
        *,
        zone: ZoneInfo,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        """``roles`` resolves who holds which role before any transaction; ``gate`` holds starts to the off-peak
        windows and freezes."""
        self.db = db
        self.policy = policy
        self.rules = rules
        self.roles = roles
        self.gate = gate
        self.zone = zone
        self.clock = clock

    # -- planning ------------------------------------------------------------------------------

    def plan(self, actor: str, request: PlanRequest) -> Run:
        """Create a run in state planned from a catalogue entry, recording the entry's exact content."""
        valid = self.rules.check_plan(request)
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
            changes = self.rules.check_edit(run, request)
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

        return self._changing("edit", run_id, apply)

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

        return self._changing("approve", run_id, apply)

    def reject(self, actor: str, run_id: int, reason: str) -> Run:
        reason = self.rules.check_reason(reason)
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

        return self._changing("reject", run_id, apply)

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

        return self._changing("cancel", run_id, apply)

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
                f"{run.label} is planned for {self._local(run.planned_start)}; it can start from {self._local(opens)}."
            )
        self._require_window_open(run)

    def _require_window_open(self, run: Run) -> None:
        if self.clock() > run.planned_start + self.policy.plan_expiry:
            raise IllegalTransition(f"{run.label}'s window has passed; plan it again.")

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
                max_duration_seconds=int(
                    self.rules.run_duration(run, dry_run=dry_run, requested=duration).total_seconds()
                ),
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

        return self._changing("begin", run_id, apply)

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
        if result not in RAN:
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

        return self._changing(_VERB[result], run_id, apply)

    def expire_overdue(self) -> list[Run]:
        """Plans whose window passed without a start become expired (called by the scheduler)."""
        expired = []
        with self.db.transaction() as session:
            # Soonest first: the overdue ones, however many newer plans wait (a sweep takes a thousand at most).
            waiting = [RunState.PLANNED, RunState.APPROVED]
            candidates = runs.find(session, states=waiting, limit=1000, soonest_first=True)
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

        return self._changing("expire", run_id, apply)

    # -- internals -----------------------------------------------------------------------------

    def _changing(self, change: str, run_id: int, apply: Callable[[Session], T]) -> T:
        """One state change: ``apply`` in its transaction (again after a lost race), traced as ``run.<change>``."""
        with span(f"run.{change}", run_id=run_id):
            return retrying(self.db, apply)

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
            missing = ", ".join(role.label for role in missing_roles(run, self.policy))
            return f"{run.label} cannot {action} yet: it still needs approval from {missing}."
        if state is RunState.APPROVED:
            return f"{run.label} is already approved (since {self._local(run.approved_at or run.updated_at)})."
        if state is RunState.RUNNING:
            return Words.of(
                f"{run.label} is already running: started by ",
                who(run.started_by or SYSTEM_ACTOR),
                f" at {self._local(run.started_at or run.updated_at)}.",
            )
        return ended_sentence(run, self.zone)

    def _local(self, moment: datetime) -> str:
        return format_local(moment, self.zone)


def _shown(value: object) -> object:
    """A plan field as the audit log records it (JSON: times as ISO 8601)."""
    return value.isoformat() if isinstance(value, datetime) else value


def _known(approver: bool | None) -> bool:
    """An approver check that was needed: unknown roles are refused with a clear "try again"."""
    if approver is None:
        raise RolesUnavailable(UNAVAILABLE)
    return approver
