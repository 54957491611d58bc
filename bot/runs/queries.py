"""Reading runs: one run, the running ones, ``/chaos status``, a person's App Home, and what a run still needs."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Generic, TypeVar
from zoneinfo import ZoneInfo

from sqlalchemy.orm import Session

from bot.errors import RolesUnavailable
from bot.policy.directory import RoleDirectory
from bot.policy.models import Policy, Role
from bot.policy.service import approvable_roles
from bot.runs import service as runs
from bot.runs.models import Run, RunState
from bot.safety import killswitch
from bot.vocabulary import format_local
from bot.words import Words, who
from storage.db import Database

T = TypeVar("T")
WAITING = (RunState.PLANNED, RunState.APPROVED)


@dataclass(frozen=True)
class Listed(Generic[T]):
    """Part of a list, and the true size of the whole: ``total`` is counted in SQL (or over every row), never
    from a capped list."""

    items: list[T]
    total: int
    offset: int = 0  # how many come before ``items``

    @property
    def after(self) -> int:
        """How many come after ``items``."""
        return max(0, self.total - self.offset - len(self.items))

    @property
    def left_out(self) -> int:
        """How many of the whole are not in ``items``."""
        return self.total - len(self.items)


@dataclass(frozen=True)
class Status:
    """What ``/chaos status`` shows: the running runs (newest first), the planned and approved ones (soonest
    first), and the kill switch."""

    running: Listed[Run]
    waiting: Listed[Run]
    kill_switch: bool


@dataclass(frozen=True)
class Home:
    """What one person's App Home shows: one page of the running runs, what waits for their approval, what is
    coming; each with its true count."""

    kill_switch: bool
    running: Listed[Run]
    awaiting_you: Listed[tuple[Run, list[Role]]]
    upcoming: Listed[Run]


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
        """Every running run, newest first."""
        with self.db.transaction() as session:
            return runs.find(session, states=[RunState.RUNNING], limit=None)

    def status(self, *, running: int, waiting: int) -> Status:
        """``/chaos status``: the first ``running`` running runs and ``waiting`` planned or approved ones."""
        with self.db.transaction() as session:
            return Status(
                running=_running(session, offset=0, limit=running),
                waiting=_waiting(session, limit=waiting),
                kill_switch=killswitch.state(session).engaged,
            )

    def home(self, user: str, *, running_offset: int = 0, running: int, listed: int) -> Home:
        """``user``'s App Home: ``running`` running runs from ``running_offset``, and up to ``listed`` of what
        waits for their approval and of what is coming."""
        with self.db.transaction() as session:
            page = _running(session, offset=running_offset, limit=running)
            upcoming = _waiting(session, limit=listed)
            planned = runs.find(session, states=[RunState.PLANNED], limit=None, soonest_first=True)
            engaged = killswitch.state(session).engaged
        try:
            held = self.roles.roles_of(user)
        except RolesUnavailable:
            held = frozenset()  # the Home tab still shows the rest; the Approve buttons are on each run's message
        awaiting = [(run, roles) for run in planned if (roles := self._awaiting(run, user, held))]
        return Home(
            kill_switch=engaged,
            running=page,
            awaiting_you=Listed(awaiting[:listed], total=len(awaiting)),  # every planned run was checked
            upcoming=upcoming,
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


def _running(session: Session, *, offset: int, limit: int) -> Listed[Run]:
    """``limit`` running runs from ``offset``, newest first; an offset past the end gives the last page."""
    total = runs.count(session, states=[RunState.RUNNING])
    if offset >= total > 0:
        offset = (total - 1) // limit * limit
    return Listed(runs.find(session, states=[RunState.RUNNING], offset=offset, limit=limit), total, offset)


def _waiting(session: Session, *, limit: int) -> Listed[Run]:
    listed = runs.find(session, states=WAITING, limit=limit, soonest_first=True)
    return Listed(listed, runs.count(session, states=WAITING))


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
