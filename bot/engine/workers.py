"""``Workers``: a thread pool whose owner stops it: queued work is cancelled, work in flight gets a deadline."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor, wait
from functools import partial
from typing import Any, ParamSpec, TypeVar

from bot.tracing import carried

log = logging.getLogger(__name__)

P = ParamSpec("P")
T = TypeVar("T")
U = TypeVar("U")


class Workers:
    def __init__(self, size: int, name: str) -> None:
        self.name = name
        self._executor = ThreadPoolExecutor(max_workers=size, thread_name_prefix=name)
        self._lock = threading.Lock()
        self._in_flight: set[Future[Any]] = set()

    def submit(self, work: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> Future[T]:
        future = self._executor.submit(carried(partial(work, *args, **kwargs)))  # the caller's span goes along
        with self._lock:
            self._in_flight.add(future)
        future.add_done_callback(self._done)
        return future

    def map(self, work: Callable[[T], U], items: Iterable[T]) -> list[U]:
        """``work`` on each item in parallel; the results in the items' order."""
        return [future.result() for future in [self.submit(work, item) for item in items]]

    def _done(self, future: Future[T]) -> None:
        with self._lock:
            self._in_flight.discard(future)

    def close(self, *, deadline_seconds: float) -> None:
        """Refuse new work, cancel what has not started, and wait for what runs until the deadline; what is
        still running then is logged and left to finish on its own (its threads end when it does)."""
        self._executor.shutdown(wait=False, cancel_futures=True)
        with self._lock:
            running = list(self._in_flight)
        _, late = wait(running, timeout=deadline_seconds)
        if late:
            log.warning("%d %s task(s) still running %.1f s after close", len(late), self.name, deadline_seconds)
            return
        self._executor.shutdown(wait=True)
