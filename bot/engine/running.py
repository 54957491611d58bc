"""``RunningNow``: which runs the database says are running, read for every watcher at once.

Each watcher step asks whether its run still runs (another replica may have ended it). One query per step was
a hundred queries a second with a hundred runs; now one query reads every running run's id, at most every
``MAX_AGE_SECONDS``, and every step in that time is answered from it.
"""

from __future__ import annotations

import threading
import time

from sqlalchemy import select

from bot.engine.outage import DB_UNAVAILABLE
from bot.runs.core import RunCore
from bot.runs.models import Run, RunState

MAX_AGE_SECONDS = 0.5


class RunningNow:
    def __init__(self, core: RunCore, *, max_age: float = MAX_AGE_SECONDS) -> None:
        self.core = core
        self.max_age = max_age
        self._lock = threading.Lock()  # one read at a time: the other steps wait for it instead of reading too
        self._ids: frozenset[int] | None = frozenset()
        self._read_at = float("-inf")

    def includes(self, run_id: int) -> bool:
        """Whether the run is running (True when the database cannot be read: keep watching).

        A run missing from the shared read is asked for alone: it may have started after that read."""
        ids = self._fresh()
        if ids is None or run_id in ids:
            return True
        try:
            return self.core.queries.run(run_id).run_state is RunState.RUNNING
        except DB_UNAVAILABLE:
            return True

    def _fresh(self) -> frozenset[int] | None:
        """The running runs' ids, or None when the last read failed (the next is tried ``max_age`` later, so a
        database outage costs one step a connection timeout, not every step)."""
        with self._lock:
            if time.monotonic() - self._read_at >= self.max_age:
                try:
                    with self.core.db.transaction() as session:
                        ids = session.scalars(select(Run.id).where(Run.state == RunState.RUNNING.value))
                        self._ids = frozenset(ids)
                except DB_UNAVAILABLE:
                    self._ids = None
                self._read_at = time.monotonic()
            return self._ids
