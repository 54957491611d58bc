"""``Timetable``: one thread that hands every running run's due work to a pool at the moment it is due.

A run used to hold two threads of its own (a watcher sleeping until its next sample, a renewal sleeping until
its next slice); with a hundred runs that was two hundred threads, most of them asleep, all sharing one
interpreter with the acks. Now each run is an entry or two on this timetable: its next sample (handed to the
sample pool) and its next renewal (handed to the renewal pool). Each piece of work puts its own next entry on
the timetable when it is done, so a run never has two samples in flight at once.

The pools start a thread only when every one of theirs is busy (``ThreadPoolExecutor`` reuses an idle one),
so a slow probe holds one thread and never delays another run's sample, and a hung renewal never delays
another run's renewal. Their caps only bound a runaway.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import threading
import time
from collections.abc import Callable

from bot.engine.workers import Workers

log = logging.getLogger(__name__)

SAMPLE_THREADS = 256  # a cap, not a size: a thread starts only when every sample thread is busy
RENEWAL_THREADS = 64
CLOSE_SECONDS = 0.5  # work in flight at close gets this long (a probe on a slow target is not waited for)


class Entry:
    """A piece of work on the timetable; ``cancel`` keeps it from being handed out (if it has not been yet)."""

    def __init__(self, due: float, work: Callable[[], None], workers: Workers) -> None:
        self.due, self.work, self.workers = due, work, workers
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True

    def run(self) -> None:
        if self.cancelled:
            return
        try:
            self.work()
        except Exception:  # the work's own owner logs and acts on its failures; this is a last resort
            log.exception("timetable work failed")


class Timetable:
    """Due work of every run, in order of when it is due (see the module docstring)."""

    def __init__(self, *, sample_threads: int = SAMPLE_THREADS, renewal_threads: int = RENEWAL_THREADS) -> None:
        self._samples = Workers(sample_threads, "chaosbot-sample")
        self._renewals = Workers(renewal_threads, "chaosbot-renew")
        self._due: list[tuple[float, int, Entry]] = []
        self._order = itertools.count()
        self._changed = threading.Condition()
        self._closed = False
        self._thread: threading.Thread | None = None

    def sample_at(self, due: float, work: Callable[[], None]) -> Entry:
        """``work`` on the sample pool at ``due`` (``time.monotonic()``)."""
        return self._put(Entry(due, work, self._samples))

    def renew_at(self, due: float, work: Callable[[], None]) -> Entry:
        """``work`` on the renewal pool at ``due`` (``time.monotonic()``)."""
        return self._put(Entry(due, work, self._renewals))

    def close(self, *, deadline_seconds: float = CLOSE_SECONDS) -> None:
        """Hand nothing more out; cancel what is queued in the pools, give what runs ``deadline_seconds``."""
        with self._changed:
            self._closed = True
            self._due.clear()
            self._changed.notify_all()
        if self._thread is not None:
            self._thread.join(timeout=1)
        self._samples.close(deadline_seconds=deadline_seconds)
        self._renewals.close(deadline_seconds=deadline_seconds)

    def _put(self, entry: Entry) -> Entry:
        with self._changed:
            if self._closed:
                entry.cancel()
                return entry
            heapq.heappush(self._due, (entry.due, next(self._order), entry))
            if self._thread is None:  # started with the first run, so an idle bot holds no thread for it
                self._thread = threading.Thread(target=self._hand_out, name="chaosbot-timetable", daemon=True)
                self._thread.start()
            elif self._due[0][2] is entry:
                self._changed.notify()
        return entry

    def _hand_out(self) -> None:
        with self._changed:
            while not self._closed:
                if not self._due:
                    self._changed.wait()
                    continue
                wait = self._due[0][0] - time.monotonic()
                if wait > 0:
                    self._changed.wait(wait)
                    continue
                _, _, entry = heapq.heappop(self._due)
                if not entry.cancelled:
                    entry.workers.submit(entry.run)  # never blocks: the pool queues or starts a thread
