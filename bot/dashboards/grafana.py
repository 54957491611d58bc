"""The fault window of each run marked on Grafana dashboards, through Grafana's annotations HTTP API:

- at inject: ``POST /api/annotations`` ``{time, tags: ["chaosbot", "RUN-n", "CE-01"], text}`` → ``{"id": …}``,
  stored against the run (``dashboard_annotations``) so whichever replica reverts can end it;
- at revert: ``PATCH /api/annotations/{id}`` ``{timeEnd}``, which turns the point into a region; an end that
  Grafana did not take (down, 5xx) is sent again by a periodic job (``resend_ends``) for up to a day.

Enabled when ``GRAFANA_URL`` and ``GRAFANA_TOKEN`` are set (the token, a service account token, is read at
each call). Calls run on this object's own worker thread: the engine's ``fault_started``/``fault_ended`` return
at once and never raise; failures (Grafana down, a refused token) are logged. When the end is recorded before
Grafana answered the create (another replica, or a very short run), the create ends the annotation itself.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import datetime, timedelta
from typing import Any

import httpx
from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.dashboards.models import DashboardAnnotation
from storage.db import Database, utcnow

log = logging.getLogger(__name__)

TIMEOUT_SECONDS = 5.0
TAG = "chaosbot"
RESEND_FOR = timedelta(days=1)  # an end older than this is not worth a region on today's dashboards
RESEND_BATCH = 100


class GrafanaAnnotations:
    """Fire-and-forget annotations of fault windows; ``close()`` lets queued calls finish, then stops."""

    def __init__(
        self,
        db: Database,
        base_url: str,
        token: Callable[[], str | None],
        *,
        dashboard_uid: str | None = None,
        http: httpx.Client | None = None,
    ) -> None:
        self.db = db
        self.base_url = base_url.rstrip("/")
        self._token = token
        self.dashboard_uid = dashboard_uid
        self._http = http or httpx.Client(timeout=TIMEOUT_SECONDS, follow_redirects=False)
        self._owns_http = http is None
        # One worker: calls of one process reach Grafana in order (a run's create before its end).
        self._worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="chaosbot-grafana")

    @classmethod
    def from_env(cls, db: Database, environ: Mapping[str, str] = os.environ) -> GrafanaAnnotations | None:
        """An instance when ``GRAFANA_URL`` and ``GRAFANA_TOKEN`` are set (``GRAFANA_DASHBOARD_UID`` optional)."""
        if not environ.get("GRAFANA_URL") or not environ.get("GRAFANA_TOKEN"):
            return None
        return cls(
            db,
            environ["GRAFANA_URL"],
            lambda: environ.get("GRAFANA_TOKEN"),
            dashboard_uid=environ.get("GRAFANA_DASHBOARD_UID") or None,
        )

    # -- what the engine calls (returns at once, never raises) -------------------------------------

    def fault_started(self, run_id: int, *, label: str, experiment_id: str, at: datetime, text: str) -> Future[None]:
        """The fault of ``run_id`` was injected at ``at``: create its annotation."""
        body: dict[str, Any] = {"time": _ms(at), "tags": [TAG, label, experiment_id], "text": text}
        if self.dashboard_uid:
            body["dashboardUID"] = self.dashboard_uid
        return self._submit(lambda: self._create(run_id, body, at), f"annotating the start of {label}")

    def fault_ended(self, run_id: int, *, at: datetime) -> Future[None]:
        """The fault of ``run_id`` was reverted at ``at``: give its annotation its end."""
        return self._submit(lambda: self._end(run_id, at), f"annotating the end of run {run_id}")

    def resend_ends(self) -> Future[None]:
        """A periodic job: send again the ends of the last day that Grafana did not take at the revert."""
        return self._submit(self._resend_ends, "sending the fault windows' missed ends")

    def close(self) -> None:
        self._worker.shutdown(wait=True)
        if self._owns_http:
            self._http.close()

    # -- on the worker thread ---------------------------------------------------------------------

    def _submit(self, job: Callable[[], None], what: str) -> Future[None]:
        def guarded() -> None:
            try:
                job()
            except Exception as exc:  # Grafana or the database down: the run goes on unmarked
                log.warning("Grafana: failed %s: %r", what, exc)

        try:
            return self._worker.submit(guarded)
        except RuntimeError:  # closed: shutting down
            log.warning("Grafana: not %s, shutting down", what)
            done: Future[None] = Future()
            done.set_result(None)
            return done

    def _create(self, run_id: int, body: dict[str, Any], at: datetime) -> None:
        with self.db.transaction() as session:
            if session.get(DashboardAnnotation, run_id) is None:
                session.add(DashboardAnnotation(run_id=run_id, started_at=at))
        response = self._http.post(f"{self.base_url}/api/annotations", json=body, headers=self._headers())
        response.raise_for_status()
        annotation_id = int(response.json()["id"])
        with self.db.transaction() as session:
            row = _locked(session, run_id)
            row.annotation_id = annotation_id
            ended_at = row.ended_at
        if ended_at is not None:  # the revert came first
            self._patch_end(run_id, annotation_id, ended_at)

    def _end(self, run_id: int, at: datetime) -> None:
        with self.db.transaction() as session:
            row = session.execute(
                select(DashboardAnnotation).where(DashboardAnnotation.run_id == run_id).with_for_update()
            ).scalar_one_or_none()
            if row is None:
                session.add(DashboardAnnotation(run_id=run_id, started_at=at, ended_at=at))
                return
            row.ended_at = at
            annotation_id = row.annotation_id
        if annotation_id is not None:
            self._patch_end(run_id, annotation_id, at)

    def _resend_ends(self) -> None:
        query = (
            select(DashboardAnnotation.run_id, DashboardAnnotation.annotation_id, DashboardAnnotation.ended_at)
            .where(
                DashboardAnnotation.annotation_id.is_not(None),
                DashboardAnnotation.end_sent.is_(False),
                DashboardAnnotation.ended_at >= utcnow() - RESEND_FOR,
            )
            .order_by(DashboardAnnotation.run_id)
            .limit(RESEND_BATCH)
        )
        with self.db.transaction() as session:
            missed = session.execute(query).all()
        for run_id, annotation_id, ended_at in missed:
            if annotation_id is not None and ended_at is not None:  # always, by the query
                self._patch_end(run_id, annotation_id, ended_at)  # a failure stops the batch: Grafana still down

    def _patch_end(self, run_id: int, annotation_id: int, at: datetime) -> None:
        url = f"{self.base_url}/api/annotations/{annotation_id}"
        response = self._http.patch(url, json={"timeEnd": _ms(at)}, headers=self._headers())
        if response.status_code == httpx.codes.NOT_FOUND:  # deleted in Grafana: nothing left to end
            log.warning("Grafana: annotation %d of run %d is gone; its end is not sent", annotation_id, run_id)
        else:
            response.raise_for_status()
        with self.db.transaction() as session:
            _locked(session, run_id).end_sent = True

    def _headers(self) -> dict[str, str]:
        token = self._token()
        if not token:
            raise RuntimeError("GRAFANA_TOKEN is not set")
        return {"Authorization": f"Bearer {token}", "Accept": "application/json"}


def _locked(session: Session, run_id: int) -> DashboardAnnotation:
    query = select(DashboardAnnotation).where(DashboardAnnotation.run_id == run_id).with_for_update()
    row: DashboardAnnotation = session.execute(query).scalar_one()
    return row


def _ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)
