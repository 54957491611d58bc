"""Database access for the interface's own table (run messages). Runs and the kill switch are read
through the core (``RunCore``), never here."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from bot.interface.models import RunMessage
from bot.schedule import firings
from storage.db import Database, utcnow

FIRST_POST = "run.message"  # a firing kind: which process posts a run's one message (key: the run id)
FIRST_POST_LEASE = timedelta(seconds=30)  # a process that claimed it and died is replaced after this


@dataclass(frozen=True)
class Where:
    channel_id: str
    message_ts: str


class RunMessages:
    """Where each run's message was posted."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def find(self, run_id: int) -> Where | None:
        with self.db.transaction() as session:
            row = session.get(RunMessage, run_id)
            return Where(row.channel_id, row.message_ts) if row is not None else None

    def claim_first_post(self, run_id: int, holder: str) -> bool:
        """True for exactly one process across replicas: the one that posts the run's message."""
        now = utcnow()
        return firings.claim(
            self.db, kind=FIRST_POST, key=str(run_id), due_at=now, holder=holder, lease=FIRST_POST_LEASE, now=now
        )

    def first_post_done(self, run_id: int, holder: str) -> None:
        firings.complete(self.db, kind=FIRST_POST, key=str(run_id), holder=holder, now=utcnow())

    def first_post_failed(self, run_id: int, holder: str, error: str) -> None:
        """Give the claim back at once: the next refresh, here or in another replica, posts it."""
        firings.failed(self.db, kind=FIRST_POST, key=str(run_id), holder=holder, error=error, retry_at=utcnow())

    def attach(self, run_id: int, *, channel_id: str, message_ts: str) -> None:
        """Remember the run's message (posting it again replaces where it is)."""
        with self.db.transaction() as session:
            row = session.get(RunMessage, run_id)
            if row is None:
                session.add(RunMessage(run_id=run_id, channel_id=channel_id, message_ts=message_ts))
            else:
                row.channel_id, row.message_ts = channel_id, message_ts
