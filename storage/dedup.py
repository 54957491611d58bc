"""Remembering which Slack deliveries were handled, so a retry is applied once.

Redis (SET NX with a TTL) when configured; the database otherwise, or when Redis fails.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

from sqlalchemy import delete
from sqlalchemy.exc import IntegrityError

from storage.db import Database, rowcount, utcnow
from storage.dedup_models import ProcessedRequest

log = logging.getLogger(__name__)
KEEP = timedelta(hours=1)


class RequestLedger:
    def __init__(self, db: Database, redis: Any | None = None) -> None:
        self.db = db
        self.redis = redis

    def first_time(self, key: str) -> bool:
        """Record ``key``; True if this is the first delivery, False for a repeat."""
        if self.redis is not None:
            try:
                return bool(self.redis.set(f"chaosbot:seen:{key}", 1, nx=True, ex=int(KEEP.total_seconds())))
            except Exception:
                log.warning("Redis unavailable for request dedup; using the database")
        try:
            with self.db.transaction() as session:
                session.add(ProcessedRequest(key=key[:255], at=utcnow()))
            return True
        except IntegrityError:
            return False

    def forget_old(self) -> int:
        with self.db.transaction() as session:
            result = session.execute(delete(ProcessedRequest).where(ProcessedRequest.at < utcnow() - KEEP))
            return rowcount(result)
