"""Renewing a fault injected in short self-healing slices (``Adapter.renew_every``) while its run lasts.

Renewal stops the moment an abort or revert begins, when the run's maximum duration is reached, and when
this process stops: a self-expiring fault then lifts by itself. Each renewal is an entry on the ``Timetable``
(run on its renewal pool), which puts the next one there when it is done: a run holds no thread of its own.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from datetime import timedelta
from typing import Protocol

from adapters.base import Adapter, AdapterParams, FaultHandle
from bot.engine.timetable import Entry
from bot.tracing import adapter_call

log = logging.getLogger(__name__)


class Renewals(Protocol):
    """Where the next renewal is put (``bot.engine.timetable.Timetable``)."""

    def renew_at(self, due: float, work: Callable[[], None]) -> Entry: ...


class Renewal:
    """Calls ``adapter.renew`` every ``adapter.renew_every`` until ``stop`` or the deadline."""

    def __init__(
        self,
        run_id: int,
        adapter: Adapter,
        params: AdapterParams,
        handle: FaultHandle,
        *,
        until: float,
        renewals: Renewals,
    ) -> None:
        every = adapter.renew_every
        if every is None:
            raise ValueError(f"adapter {adapter.name} does not renew its faults")
        self.run_id = run_id
        self.adapter, self.params, self.handle = adapter, params, handle
        self.every = every.total_seconds()
        self.until = until  # time.monotonic() at the end of the run's maximum duration
        self.renewals = renewals
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._next: Entry | None = None

    def start(self) -> None:
        self._put()

    def stop(self) -> None:
        """No renewal starts after this returns (one already in flight may finish)."""
        with self._lock:
            self._stop.set()
            if self._next is not None:
                self._next.cancel()

    @property
    def stopped(self) -> bool:
        return self._stop.is_set()

    def _put(self) -> None:
        with self._lock:
            if not self._stop.is_set():
                self._next = self.renewals.renew_at(time.monotonic() + self.every, self._renew)

    def _renew(self) -> None:
        left = self.until - time.monotonic()
        if self._stop.is_set() or left <= 0:
            return
        try:
            renew = adapter_call(self.adapter.name, "renew", self.adapter.renew)
            renew(self.params, self.handle, duration=timedelta(seconds=left))
        except Exception:  # a missed renewal only lets the fault heal early; keep trying
            log.warning("renewal of the fault of run %s failed", self.run_id, exc_info=True)
        self._put()
