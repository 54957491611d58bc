"""Where work after an ack runs: a pool for ordinary work that gives way to requests being answered, and
an urgent pool for the kill switch that never waits."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field

from bot.interface.surface import Background
from bot.tracing import carried

log = logging.getLogger(__name__)

FOREGROUND_PATIENCE_SECONDS = 0.5
QUIET_GAP_SECONDS = 0.02


class Foreground:
    """The Slack requests being answered right now. Work after the ack waits for them, at most ``patience``:
    an ack has Slack's 3-second deadline and a reply has none, and both share one interpreter (the GIL), so
    under a burst the replies queue for a moment instead of slowing every ack."""

    def __init__(self, patience: float = FOREGROUND_PATIENCE_SECONDS, gap: float = QUIET_GAP_SECONDS) -> None:
        self.patience, self.gap = patience, gap
        self._answering = 0
        self._last_answered = 0.0
        self._quiet = threading.Condition()

    @contextmanager
    def answering(self) -> Iterator[None]:
        with self._quiet:
            self._answering += 1
        try:
            yield
        finally:
            with self._quiet:
                self._answering -= 1
                self._last_answered = time.monotonic()

    def wait_until_quiet(self) -> None:
        """Until no request has been answered for ``gap`` (in a burst the next one is usually a moment away;
        a reply started in that moment would hold the interpreter while it arrives), at most ``patience``."""
        deadline = time.monotonic() + self.patience
        with self._quiet:
            while (now := time.monotonic()) < deadline:
                if self._answering == 0 and now - self._last_answered >= self.gap:
                    return
                self._quiet.wait(min(self.gap, deadline - now))


class _Turns:
    """At most ``size`` tasks of a pool running at once. A task sleeping (Slack's ``Retry-After``) gives its turn
    away meanwhile: a sleeping thread does not compete for the interpreter, and a burst that Slack rate-limits
    would otherwise hold every turn in sleep while the queue waits."""

    def __init__(self, size: int) -> None:
        self._free = threading.Semaphore(size)

    @contextmanager
    def turn(self) -> Iterator[None]:
        self._free.acquire()
        _current.turns, _current.holding = self, True
        try:
            yield
        finally:
            self._give_back()
            _current.turns = None

    def sleep(self, seconds: float) -> None:
        self._give_back()
        time.sleep(seconds)
        # Waiting without bound could deadlock: the tasks holding the turns may wait for a lock this one holds.
        _current.holding = self._free.acquire(timeout=FOREGROUND_PATIENCE_SECONDS)

    def _give_back(self) -> None:
        if _current.holding:
            _current.holding = False
            self._free.release()


_current = threading.local()  # the _Turns whose turn this thread runs in, if any


def sleep(seconds: float) -> None:
    """``time.sleep`` for work after an ack: the calling task's turn goes to another task meanwhile."""
    turns: _Turns | None = getattr(_current, "turns", None)
    if turns is None:
        time.sleep(seconds)
    else:
        turns.sleep(seconds)


class _Pool:
    """A thread pool whose tasks log their own failures; ``submit`` is a ``Background``. At most ``size`` tasks
    run at once (more threads wait in ``sleep``). With a ``foreground``, each task first waits (boundedly)
    until no request is being answered."""

    def __init__(self, size: int, name: str, foreground: Foreground | None = None, threads: int = 0) -> None:
        self._executor = ThreadPoolExecutor(max_workers=max(size, threads), thread_name_prefix=name)
        self._foreground = foreground
        self._turns = _Turns(size)

    def submit(self, work: Callable[[], None]) -> None:
        def run() -> None:
            with self._turns.turn():  # the threads without a turn block here instead of polling the foreground
                if self._foreground is not None:
                    self._foreground.wait_until_quiet()
                try:
                    work()
                except Exception:
                    log.exception("background task failed")

        self._executor.submit(carried(run))  # the task's spans belong to the request that submitted it

    def close(self) -> None:
        """Finish what is queued (it may be an abort's record), refuse new work."""
        self._executor.shutdown(wait=True, cancel_futures=False)


@dataclass(frozen=True)
class Pools:
    """Where work after the ack runs. The kill switch has its own pool so it never queues behind other work,
    and never waits for the foreground."""

    work: Background
    urgent: Background
    foreground: Foreground = field(default_factory=Foreground)
    _owned: tuple[_Pool, ...] = ()

    def close(self) -> None:
        for pool in self._owned:
            pool.close()


def worker_pools(work: int = 2, urgent: int = 256, sleepers: int = 16, quiet_gap: float = QUIET_GAP_SECONDS) -> Pools:
    """Two tasks after an ack running at once, on purpose: request threads share the interpreter with them, and
    every extra one takes the GIL from acks under a burst (measured in bench/README.md). Up to ``sleepers``
    more threads wait out Slack's ``Retry-After`` without a turn. Aborts get their own threads and never wait:
    up to ``urgent`` at once (a thread is started only when every one is busy), because an abort's bookkeeping
    waits for the other aborts' reverts (``bot.engine.aborter.RevertsFirst``) and keeps its thread meanwhile;
    with 16 (and then 64) threads, the 17th (65th) of many simultaneous aborts waited for a thread until an
    earlier abort's records were written (bench/README.md: N=100 p99 2.5 s with 64)."""
    foreground = Foreground(gap=quiet_gap)
    work_pool = _Pool(work, "chaosbot-work", foreground, threads=work + sleepers)
    urgent_pool = _Pool(urgent, "chaosbot-urgent")
    return Pools(
        work=work_pool.submit, urgent=urgent_pool.submit, foreground=foreground, _owned=(work_pool, urgent_pool)
    )
