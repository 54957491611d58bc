"""The engine's deferred database writes: a record the database cannot take now is spooled, never lost.

A record the engine must keep (a revert, an end, a fault's injected handle, the kill switch) is written at
once. When the database is unreachable it goes to the local spool (``spool.py``: fsynced, one JSON object
per line) and one thread replays the spool with backoff, for as long as it takes. A process replays the
spool at start as well, so records spooled by a process that died are applied by the next one. Each record
is applied exactly once: its id is stored in ``spool_applied`` in the same transaction as the write.

Probe measurements are not records: while the database is down they are dropped (with a warning).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence

from bot.engine.outage import DB_UNAVAILABLE
from bot.engine.spool import Spool, SpoolRecord
from bot.errors import DomainError

log = logging.getLogger(__name__)

RETRY_DELAYS: tuple[float, ...] = (0.5, 1, 2, 4, 8, 15, 30)  # then every 30 s until the database is back
DRAIN_PAUSE_SECONDS = 0.2

Apply = Callable[[SpoolRecord], None]


class PendingWrites:
    """Write records now, or spool them and replay later; see the module docstring.

    ``apply`` writes one record in one transaction together with its id (``bot.engine.applying``); it may
    be given after construction with ``bind`` (the engine builds it from its core).
    """

    def __init__(self, spool: Spool, *, apply: Apply | None = None, delays: Sequence[float] = RETRY_DELAYS) -> None:
        self.spool = spool
        self.delays = tuple(delays)
        self._apply = apply
        self._lock = threading.Lock()
        self._wake = threading.Condition(self._lock)
        self._closed = False
        self._thread: threading.Thread | None = None

    def bind(self, apply: Apply) -> None:
        """Set how records are applied, and replay what an earlier process left in the spool."""
        self._apply = apply
        if self.spool.waiting():
            self._ensure_replaying()

    def write(self, record: SpoolRecord) -> bool:
        """Write now; when the database is unreachable, spool it for the replay. True when written now.

        Errors other than an unreachable database (``IllegalTransition``: the run ended elsewhere) propagate.
        """
        try:
            self._applier()(record)
            return True
        except DB_UNAVAILABLE as exc:
            log.warning("database unavailable while storing %s (%s); spooling it", record.what, exc)
            self.later(record)
            return False

    def write_in_order(self, record: SpoolRecord) -> bool:
        """``write``, but behind the records still waiting in the spool: for a record that completes one of
        them (the recovery after an abort completes its end)."""
        if self.spool.waiting():
            self.later(record)
            return False
        return self.write(record)

    def later(self, record: SpoolRecord) -> None:
        """Spool a record that just failed for lack of a database, and make sure a replay is coming."""
        try:
            self.spool.append(record)
        except OSError:  # the disk failed us as well: say exactly what is lost
            log.exception("not stored (database unreachable and the spool not writable): %s", record.what)
            return
        self._ensure_replaying()

    def replay(self) -> bool:
        """Replay the spool now; True when it is empty afterwards."""
        return self.spool.replay(self._replay_one)

    def landed(self) -> bool:
        """True when no record waits in the spool, replaying it first when one does (and it can be applied)."""
        return not self.spool.waiting() or (self._apply is not None and self.replay())

    def close(self, *, deadline_seconds: float = 5.0) -> None:
        """Stop the background replay, try the spool until the deadline; what remains stays spooled."""
        with self._lock:
            self._closed = True
            self._wake.notify_all()
            thread = self._thread
        if thread is not None:
            thread.join(timeout=deadline_seconds)
        if self._apply is None:
            return
        deadline = time.monotonic() + deadline_seconds
        while self.spool.waiting():
            if self.replay():
                return
            if time.monotonic() >= deadline:
                files = ", ".join(str(path) for path in self.spool.files())
                log.warning("records stay spooled (the next chaosbot process to start replays them): %s", files)
                return
            time.sleep(DRAIN_PAUSE_SECONDS)

    # -- applying ---------------------------------------------------------------------------------

    def _applier(self) -> Apply:
        if self._apply is None:
            raise RuntimeError("PendingWrites.bind() was not called")
        return self._apply

    def _replay_one(self, record: SpoolRecord) -> None:
        """Apply a spooled record; only an unreachable database stops the replay (and keeps the file)."""
        try:
            self._applier()(record)
            log.info("recorded after a database outage: %s", record.what)
        except DB_UNAVAILABLE:
            raise
        except DomainError as exc:  # e.g. another replica ended the run meanwhile
            log.info("not recording %s: %s", record.what, exc.message)
        except Exception:
            log.exception("not stored (the write failed): %s", record.what)

    # -- the replay thread ------------------------------------------------------------------------

    def _ensure_replaying(self) -> None:
        with self._lock:
            if self._closed:
                return
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._replay_loop, name="chaosbot-spool-replay", daemon=True)
                self._thread.start()
            self._wake.notify()

    def _replay_loop(self) -> None:
        attempt = 0
        while self._pause(self.delays[min(attempt, len(self.delays) - 1)]):
            if self._apply is not None and self.replay():
                with self._lock:
                    if not self.spool.waiting():
                        self._thread = None
                        return
                attempt = 0
                continue
            attempt += 1

    def _pause(self, seconds: float) -> bool:
        """Wait before the next replay; False once closed (close() makes the last attempts)."""
        with self._lock:
            if not self._closed:
                self._wake.wait(seconds)
            return not self._closed
