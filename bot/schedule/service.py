"""The scheduler: notices and automatic starts of planned runs, each fired once across replicas.

Due firings are derived from the runs table on every tick, never kept in memory or in a job store, so
they survive restarts and an edited plan simply derives new ones (the key holds the planned start):

- a **notice** at ``planned_start - policy.notice`` for every planned or approved run;
- an **automatic start** at ``planned_start`` for every planned or approved run with ``auto_start``.
  A run still waiting for approvals is handed over too: the handler tells its thread who is missing.

The runtime calls ``Scheduler.tick()`` every few seconds in every replica. Each due firing is claimed
through ``bot.schedule.firings`` (one winner), the run is re-read, and the ``FiringHandler`` is called.
A handler that raises is retried with back-off; once the moment is more than ``policy.plan_expiry``
past, the firing is closed as missed and ``handler.missed`` lets the thread say so.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Protocol

from sqlalchemy import select

from bot.policy.models import Policy
from bot.runs.models import Run, RunState
from bot.schedule import firings
from bot.schedule.firings import DEFAULT_BACKOFF, Backoff
from bot.schedule.models import Firing
from storage.db import Database, process_identity, utcnow

log = logging.getLogger(__name__)

NOTICE = "run.notice"
AUTO_START = "run.auto_start"
KINDS = (NOTICE, AUTO_START)
_WAITING = (RunState.PLANNED.value, RunState.APPROVED.value)

# Outcomes recorded on a firing.
DONE = "done"
MISSED = "missed"
OBSOLETE = "obsolete"  # the run was started, ended or re-planned before the firing ran


class FiringHandler(Protocol):
    """What the interface does when a firing is due. Raising means "failed, try again later"."""

    def notice(self, run: Run) -> None:
        """Announce ``run`` in the channel and its thread: what, where, who, when, whether it starts by itself."""

    def auto_start(self, run: Run) -> str | None:
        """Start ``run`` as a person's Start would (kill switch, window, freeze, preflight).

        A refusal is not a failure: say in the thread and channel which rule refused and return a short
        outcome such as ``"refused:freeze"`` (recorded on the firing). Return None (or ``"started"``) on a start.
        A run still waiting for approvals (state planned) comes here too: say who is missing
        (``messages.not_approved``) and return ``"refused:approval"``. No retry follows a refusal.
        """

    def missed(self, run: Run, kind: str) -> None:
        """Tell the thread that the firing ``kind`` (NOTICE or AUTO_START) could not happen in time."""


@dataclass(frozen=True)
class Fired:
    """One firing this replica handled in a tick (for logs and tests)."""

    kind: str
    key: str
    run_id: int
    outcome: str  # done, missed, obsolete, failed, or what the handler returned


@dataclass(frozen=True)
class _Due:
    kind: str
    key: str
    run_id: int
    due_at: datetime
    planned_start: datetime


def firing_key(run_id: int, planned_start: datetime) -> str:
    """``run:42:2026-12-03T11:00:00+00:00``: a new planned start gives new firings."""
    return f"run:{run_id}:{planned_start.astimezone(UTC).isoformat()}"


class Scheduler:
    """Derives due firings from the runs table and fires each once; the runtime calls ``tick`` every few seconds."""

    def __init__(
        self,
        db: Database,
        policy: Policy,
        handler: FiringHandler,
        *,
        holder: str | None = None,
        clock: Callable[[], datetime] = utcnow,
        lease: timedelta = timedelta(minutes=2),
        backoff: Backoff = DEFAULT_BACKOFF,
    ) -> None:
        self.db = db
        self.policy = policy
        self.handler = handler
        self.holder = holder or process_identity()
        self.clock = clock
        self.lease = lease
        self.backoff = backoff

    def tick(self, now: datetime | None = None) -> list[Fired]:
        """Fire every due firing this replica wins, notices before starts, oldest first."""
        now = now or self.clock()
        fired = []
        for due in self.due(now):
            outcome = self._fire(due, now)
            if outcome is not None:
                fired.append(Fired(due.kind, due.key, due.run_id, outcome))
        return fired

    def due(self, now: datetime) -> list[_Due]:
        """Firings whose moment has come and which are not finished (claimed or not)."""
        with self.db.transaction() as session:
            runs = list(
                session.scalars(
                    select(Run).where(Run.state.in_(_WAITING), Run.planned_start <= now + self.policy.notice)
                )
            )
            stuck = list(
                session.execute(
                    select(Firing.kind, Firing.key, Firing.run_id, Firing.due_at).where(
                        Firing.kind.in_(KINDS), Firing.done_at.is_(None), Firing.run_id.is_not(None)
                    )
                )
            )
        candidates: dict[tuple[str, str], _Due] = {}
        for run in runs:
            key = firing_key(run.id, run.planned_start)
            notice_at = run.planned_start - self.policy.notice
            candidates[(NOTICE, key)] = _Due(NOTICE, key, run.id, notice_at, run.planned_start)
            if run.auto_start and run.planned_start <= now:
                candidates[(AUTO_START, key)] = _Due(AUTO_START, key, run.id, run.planned_start, run.planned_start)
        # Firings begun earlier whose run has left the derived set (ended, re-planned): finish them too.
        for kind, key, run_id, due_at in stuck:
            if (kind, key) not in candidates and due_at <= now and run_id is not None:
                candidates[(kind, key)] = _Due(kind, key, run_id, due_at, due_at)
        finished = set()
        for kind in KINDS:
            keys = [key for (k, key) in candidates if k == kind]
            finished |= {(kind, key) for key in firings.done_keys(self.db, kind=kind, keys=keys)}
        pending = [due for ident, due in candidates.items() if ident not in finished]
        return sorted(pending, key=lambda due: (due.planned_start, KINDS.index(due.kind), due.run_id))

    def _fire(self, due: _Due, now: datetime) -> str | None:
        won = firings.claim(
            self.db,
            kind=due.kind,
            key=due.key,
            due_at=due.due_at,
            holder=self.holder,
            lease=self.lease,
            now=now,
            run_id=due.run_id,
        )
        if not won:
            return None
        run = self._current(due)
        if run is None:
            self._close(due, now, OBSOLETE)
            return OBSOLETE
        if now > due.due_at + self.policy.plan_expiry:
            self._tell_missed(run, due)
            self._close(due, now, MISSED)
            return MISSED
        try:
            outcome = self._call(due.kind, run) or DONE
        except Exception as exc:
            return self._failed(due, now, exc)
        self._close(due, now, outcome)
        return outcome

    def _current(self, due: _Due) -> Run | None:
        """The run as it is now, if this firing still applies to it (waiting, same planned start)."""
        with self.db.transaction() as session:
            run = session.get(Run, due.run_id)
            if run is None or run.state not in _WAITING or firing_key(run.id, run.planned_start) != due.key:
                return None
            if due.kind == AUTO_START and not run.auto_start:
                return None
            return run

    def _call(self, kind: str, run: Run) -> str | None:
        if kind == NOTICE:
            self.handler.notice(run)
            return None
        return self.handler.auto_start(run)

    def _tell_missed(self, run: Run, due: _Due) -> None:
        try:
            self.handler.missed(run, due.kind)
        except Exception:
            # The firing is closed either way: retrying a "we missed it" message forever helps nobody.
            log.exception("could not report the missed %s of run %s", due.kind, due.run_id)

    def _failed(self, due: _Due, now: datetime, exc: Exception) -> str:
        firing = firings.get(self.db, kind=due.kind, key=due.key)
        attempts = firing.attempts if firing else 1
        retry_at = now + self.backoff.after(attempts)
        log.warning(
            "%s of run %s failed (attempt %s), retrying from %s: %s",
            due.kind,
            due.run_id,
            attempts,
            retry_at.isoformat(),
            firings.error_text(exc),
            exc_info=exc,
        )
        firings.failed(
            self.db, kind=due.kind, key=due.key, holder=self.holder, error=firings.error_text(exc), retry_at=retry_at
        )
        return "failed"

    def _close(self, due: _Due, now: datetime, outcome: str) -> None:
        if not firings.close(self.db, kind=due.kind, key=due.key, holder=self.holder, now=now, outcome=outcome):
            log.warning("%s of run %s: the claim ran out before it finished", due.kind, due.run_id)
