"""One background thread per engine that renews the leases of every run this process is responsible for."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import timedelta

from bot.engine.coordination import Coordination

log = logging.getLogger(__name__)


class LeaseKeeper:
    """Renews each tracked run's lease every ``every`` (``ttl / 3`` by default); calls ``on_lost`` when another
    holder has it.

    A renewal that *fails* (store unreachable) is not a loss: the run keeps going and the next renewal
    tries again. Only a store that answers "someone else holds it" makes us let go of the run.
    """

    def __init__(
        self,
        coordination: Coordination,
        holder: str,
        ttl: timedelta,
        *,
        on_lost: Callable[[int], None],
        every: timedelta | None = None,
    ) -> None:
        self.coordination = coordination
        self.holder = holder
        self.ttl = ttl
        self.every = every if every is not None else ttl / 3
        self.on_lost = on_lost
        self._runs: set[int] = set()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def track(self, run_id: int) -> None:
        with self._lock:
            self._runs.add(run_id)
            if self._thread is None and not self._stop.is_set():
                self._thread = threading.Thread(target=self._loop, name="chaosbot-leases", daemon=True)
                self._thread.start()

    def untrack(self, run_id: int) -> None:
        with self._lock:
            self._runs.discard(run_id)

    def tracked(self) -> set[int]:
        with self._lock:
            return set(self._runs)

    def close(self) -> None:
        """Stop renewing (without releasing: the leases lapse, so another process can take the runs over)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=2)

    def _loop(self) -> None:
        period = self.every.total_seconds()
        while not self._stop.wait(period):
            for run_id in self.tracked():
                self._renew(run_id)

    def _renew(self, run_id: int) -> None:
        try:
            held = self.coordination.renew(run_id, self.holder, self.ttl)
        except Exception:  # an unreachable store is not a lost lease; try again next period
            log.warning("could not renew the lease of run %s; retrying", run_id, exc_info=True)
            return
        if not held and run_id in self.tracked():
            log.warning("lost the lease of run %s to another process; no longer watching it", run_id)
            self.untrack(run_id)
            self.on_lost(run_id)
