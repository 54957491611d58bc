"""Silences for the alerts a run is expected to fire: on with the fault, off with its revert, exactly once.

- ``preflight`` says why a run with silences cannot start (no Alertmanager in the policy, or it does not answer),
  before anything is injected.
- ``silence`` creates the experiment's silences right before the inject. Each ends at the run's latest possible
  end plus ``MARGIN``, so Alertmanager lifts it by itself if every replica dies. If one cannot be created, those
  already made are expired and the start fails: no fault runs with half of its expected alerts paging.
- ``lift`` expires a run's silences when its fault is reverted (completion, abort, kill switch, SIGTERM, the dead
  man's switch). A conditional UPDATE claims each one, so two replicas never both expire it; one that Alertmanager
  did not take is retried by ``retry_lifts`` (a periodic job) until it is expired or its own end has passed.

No call is made while a transaction is open.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from bot.alerting.alertmanager import Alertmanager, AlertmanagerError
from bot.alerting.models import RunSilence
from bot.catalogue.models import Experiment
from storage.db import Database, utcnow

log = logging.getLogger(__name__)

MARGIN = timedelta(minutes=5)


class SilenceError(Exception):
    """A silence could not be created; the run must not start. The message is safe to show."""


@dataclass(frozen=True)
class Lifted:
    silence_id: str
    ok: bool
    error: str | None = None


class RunSilences:
    """The silences of every run, on one database and one Alertmanager (``None``: the policy names none)."""

    def __init__(
        self, db: Database, alertmanager: Alertmanager | None, *, clock: Callable[[], datetime] = utcnow
    ) -> None:
        self.db = db
        self.alertmanager = alertmanager
        self.clock = clock
        self._worker: ThreadPoolExecutor | None = None
        self._guard = threading.Lock()
        self._closed = False

    def lift_soon(self, run_id: int) -> Future[list[Lifted]] | None:
        """``lift`` on this object's own thread: a revert never waits for Alertmanager (down or slow).

        Without an Alertmanager nothing was silenced, so nothing is done (not even a database read that
        would compete with the abort's own records)."""
        if self.alertmanager is None:
            return None
        with self._guard:
            if self._closed:
                log.warning("silences of run %s not lifted by this process (closing); the retry job will", run_id)
                return None
            if self._worker is None:
                self._worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="chaosbot-silences")
            return self._worker.submit(self.lift, run_id)

    def close(self) -> None:
        """Let queued lifts finish (each bounded by the client's timeout), then stop the worker."""
        with self._guard:
            self._closed, worker = True, self._worker
        if worker is not None:
            worker.shutdown(wait=True)
        if self.alertmanager is not None:
            self.alertmanager.close()

    def preflight(self, experiment: Experiment) -> str | None:
        """Why this experiment's silences cannot be made now, or ``None`` (also when it lists none)."""
        if not experiment.silences:
            return None
        if self.alertmanager is None:
            return "the experiment lists silences, but the policy names no Alertmanager (alertmanager: {url: …})"
        try:
            self.alertmanager.check()
        except AlertmanagerError as exc:
            return f"Alertmanager cannot create the run's silences: {exc}"
        return None

    def silence(self, run_id: int, *, label: str, experiment: Experiment, latest_end: datetime, link: str) -> list[str]:
        """Create the experiment's silences for this run; raise ``SilenceError`` (none left behind) if one fails."""
        if not experiment.silences or self.alertmanager is None:
            return []
        ends_at = latest_end + MARGIN
        created: list[tuple[str, dict[str, str]]] = []
        for spec in experiment.silences:
            comment = f"{label} ({experiment.id} {experiment.title}): expected while the fault is on. {link}"
            if spec.comment:
                comment = f"{spec.comment} · {comment}"
            try:
                created.append(
                    (self.alertmanager.create_silence(spec.matchers, ends_at=ends_at, comment=comment), spec.matchers)
                )
            except AlertmanagerError as exc:
                self._undo(created)
                shown = matchers_text(spec.matchers)
                raise SilenceError(f"a silence for {shown} could not be created: {exc}") from None
        now = self.clock()
        with self.db.transaction() as session:
            session.add_all(
                RunSilence(run_id=run_id, silence_id=sid, matchers=dict(m), created_at=now, ends_at=ends_at, attempts=0)
                for sid, m in created
            )
        return [sid for sid, _ in created]

    def lift(self, run_id: int) -> list[Lifted]:
        """Expire the run's silences now; each at most once across replicas. Never raises."""
        now = self.clock()
        with self.db.transaction() as session:
            session.execute(
                update(RunSilence)
                .where(RunSilence.run_id == run_id, RunSilence.lift_requested_at.is_(None))
                .values(lift_requested_at=now)
            )
            pending = list(
                session.scalars(
                    select(RunSilence.id).where(RunSilence.run_id == run_id, RunSilence.expired_at.is_(None))
                )
            )
        return [lifted for row_id in pending if (lifted := self._expire(row_id)) is not None]

    def retry_lifts(self) -> list[Lifted]:
        """Expire the silences whose lift failed earlier; one past its own end is over by itself."""
        now = self.clock()
        with self.db.transaction() as session:
            session.execute(
                update(RunSilence)
                .where(
                    RunSilence.lift_requested_at.is_not(None),
                    RunSilence.expired_at.is_(None),
                    RunSilence.ends_at <= now,
                )
                .values(expired_at=RunSilence.ends_at)
            )
            pending = list(
                session.scalars(
                    select(RunSilence.id).where(
                        RunSilence.lift_requested_at.is_not(None), RunSilence.expired_at.is_(None)
                    )
                )
            )
        return [lifted for row_id in pending if (lifted := self._expire(row_id)) is not None]

    def of_run(self, run_id: int) -> list[RunSilence]:
        with self.db.transaction() as session:
            rows = silences_of(session, run_id=run_id)
            session.expunge_all()
        return rows

    # -- internals --------------------------------------------------------------------------------

    def _expire(self, row_id: int) -> Lifted | None:
        """Claim the row, expire the silence, or give the claim back with the error. ``None``: another had it."""
        with self.db.transaction() as session:
            claimed = session.execute(
                update(RunSilence)
                .where(RunSilence.id == row_id, RunSilence.expired_at.is_(None))
                .values(expired_at=self.clock())
                .returning(RunSilence.silence_id)
            ).scalar_one_or_none()
        if claimed is None:
            return None
        try:
            if self.alertmanager is None:
                raise AlertmanagerError("the policy names no Alertmanager any more")
            self.alertmanager.expire_silence(claimed)
        except AlertmanagerError as exc:
            with self.db.transaction() as session:
                session.execute(
                    update(RunSilence)
                    .where(RunSilence.id == row_id)
                    .values(expired_at=None, attempts=RunSilence.attempts + 1, last_error=str(exc)[:500])
                )
            log.warning("silence %s could not be expired (retried; its own end bounds it): %s", claimed, exc)
            return Lifted(claimed, ok=False, error=str(exc))
        return Lifted(claimed, ok=True)

    def _undo(self, created: list[tuple[str, dict[str, str]]]) -> None:
        for silence_id, _ in created:
            try:
                assert self.alertmanager is not None  # only called after creating through it
                self.alertmanager.expire_silence(silence_id)
            except AlertmanagerError as exc:
                log.warning(
                    "silence %s of a refused start could not be expired (it ends by itself): %s", silence_id, exc
                )


def silences_of(session: Session, *, run_id: int) -> list[RunSilence]:
    """The silences a run made, in the order they were created (for its record and retrospective)."""
    return list(session.scalars(select(RunSilence).where(RunSilence.run_id == run_id).order_by(RunSilence.id)))


def silence_ids_by_run(session: Session) -> dict[int, list[str]]:
    """Every run's silence ids (for the exported record)."""
    found: dict[int, list[str]] = {}
    for run_id, silence_id in session.execute(select(RunSilence.run_id, RunSilence.silence_id).order_by(RunSilence.id)):
        found.setdefault(run_id, []).append(silence_id)
    return found


def matchers_text(matchers: dict[str, str]) -> str:
    """Matchers as people read them: ``alertname=ShareLinkLatencyHigh, env=staging``."""
    return ", ".join(f"{k}={v}" for k, v in matchers.items())
