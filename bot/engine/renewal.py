"""Renewing a fault injected in short self-healing slices (``Adapter.renew_every``) while its run lasts.

Renewal stops the moment an abort or revert begins, when the run's maximum duration is reached, and when
this process stops: a self-expiring fault then lifts by itself.
"""

from __future__ import annotations

import logging
import threading
import time
from datetime import timedelta

from adapters.base import Adapter, AdapterParams, FaultHandle
from bot.tracing import adapter_call

log = logging.getLogger(__name__)


class Renewal:
    """One thread calling ``adapter.renew`` every ``adapter.renew_every`` until ``stop`` or the deadline."""

    def __init__(
        self, run_id: int, adapter: Adapter, params: AdapterParams, handle: FaultHandle, *, until: float
    ) -> None:
        every = adapter.renew_every
        if every is None:
            raise ValueError(f"adapter {adapter.name} does not renew its faults")
        self.run_id = run_id
        self.adapter, self.params, self.handle = adapter, params, handle
        self.every = every.total_seconds()
        self.until = until  # time.monotonic() at the end of the run's maximum duration
        self._stop = threading.Event()
        self.thread = threading.Thread(target=self._loop, name=f"chaosbot-renew-{run_id}", daemon=True)

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        """No renewal starts after this returns (one already in flight may finish)."""
        self._stop.set()

    @property
    def stopped(self) -> bool:
        return self._stop.is_set()

    def _loop(self) -> None:
        while not self._stop.wait(self.every):
            left = self.until - time.monotonic()
            if left <= 0:
                return
            try:
                adapter_call(self.adapter.name, "renew", self.adapter.renew)(
                    self.params, self.handle, duration=timedelta(seconds=left)
                )
            except Exception:  # a missed renewal only lets the fault heal early; keep trying
                log.warning("renewal of the fault of run %s failed", self.run_id, exc_info=True)
