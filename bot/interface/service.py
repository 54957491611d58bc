"""Database access for the interface's own table (run messages). Runs and the kill switch are read
through the core (``Lifecycle``), never here."""

from __future__ import annotations

from dataclasses import dataclass

from bot.interface.models import RunMessage
from storage.db import Database


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

    def attach(self, run_id: int, *, channel_id: str, message_ts: str) -> None:
        """Remember the run's message (posting it again replaces where it is)."""
        with self.db.transaction() as session:
            row = session.get(RunMessage, run_id)
            if row is None:
                session.add(RunMessage(run_id=run_id, channel_id=channel_id, message_ts=message_ts))
            else:
                row.channel_id, row.message_ts = channel_id, message_ts
