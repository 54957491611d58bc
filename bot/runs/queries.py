"""Reading runs: one run, the running ones, ``/chaos status``, a person's App Home, and what a run still needs."""

from __future__ import annotations

from dataclasses import dataclass
from zoneinfo import ZoneInfo

from bot.errors import RolesUnavailable
from bot.policy.directory import RoleDirectory
from bot.policy.models import Policy, Role
from bot.policy.service import approvable_roles
from bot.runs import service as runs
from bot.runs.models import ACTIVE, Run, RunState
from bot.safety import killswitch
from bot.vocabulary import format_local
from bot.words import Words, who
from storage.db import Database


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


class RunQueries:
    """Reads runs for the interface, the console and the engine; changes nothing."""

    def __init__(self, db: Database, policy: Policy, roles: RoleDirectory, *, zone: ZoneInfo) -> None:
        self.db = db
        self.policy = policy
        self.roles = roles
        self.zone = zone

    def run(self, run_id: int) -> Run:
        """One run with its approvals (``NotFound`` if there is none)."""
        with self.db.transaction() as session:
            return runs.get(session, run_id=run_id)

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

    def missing_roles(self, run: Run) -> list[Role]:
        """The roles whose approval ``run`` still needs, in the policy's order."""
        return missing_roles(run, self.policy)

    def ended_sentence(self, run: Run) -> Words:
        """ "RUN-4 already ended: aborted by @sam at … (reason)." for a run in a final state."""
        return ended_sentence(run, self.zone)

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


def missing_roles(run: Run, policy: Policy) -> list[Role]:
    approved = runs.approvals_by_role(run)
    return [role for role in policy.required_roles(run.environment) if role not in approved]


def ended_sentence(run: Run, zone: ZoneInfo) -> Words:
    ended = Words.of(f"{run.label} already ended: {run.state}")
    if run.ended_by:
        ended += Words.of(" by ", who(run.ended_by))
    if run.ended_at:
        ended += f" at {format_local(run.ended_at, zone)}"
    return ended + (f" ({run.end_reason})." if run.end_reason else ".")
