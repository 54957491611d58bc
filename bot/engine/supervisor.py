"""What this process holds while runs run: their leases, watchers and fault renewals.

Watchers and renewals hold no thread of their own: their steps are entries on the engine's ``Timetable``.
Whether a run still runs is read for every watcher at once (``RunningNow``), not once per step.

The ``Supervisor`` is the watchers' host (``WatcherHost``): a breach or a watcher crash arrives here, never
on ``RunEngine``'s public face. Sampling is the ``Prober``'s; the maximum duration and the measured recovery
go to ``Completion`` (outcomes.py), which the supervisor builds and hands to each watcher.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Protocol

from adapters.base import Adapter, AdapterParams, FaultHandle
from bot.catalogue.models import Experiment
from bot.engine import wording
from bot.engine.announcer import Announcer
from bot.engine.coordination import Coordination
from bot.engine.endings import ENGINE_ACTOR
from bot.engine.leases import LeaseKeeper
from bot.engine.outage import DB_UNAVAILABLE
from bot.engine.outcomes import Completion
from bot.engine.prober import Prober
from bot.engine.recovery import Recovering
from bot.engine.renewal import Renewal
from bot.engine.rollbacks import RollbackStore
from bot.engine.running import RunningNow
from bot.engine.timetable import Timetable
from bot.engine.watcher import Watcher
from bot.errors import DomainError
from bot.runs.core import RunCore

log = logging.getLogger(__name__)


class Abort(Protocol):
    """How the supervisor asks for an abort (a breach, a watcher crash): ``Aborter.abort``."""

    def __call__(
        self, actor: str, run_id: int, reason: str, *, breach: str | None = None, recovering: Recovering | None = None
    ) -> object: ...


@dataclass(frozen=True)
class Injected:
    """A fault now in place: what renewing it needs."""

    adapter: Adapter
    params: AdapterParams
    handle: FaultHandle


class Supervisor:
    """Leases, watchers and renewals of the runs this process is responsible for; see the module docstring."""

    def __init__(
        self,
        core: RunCore,
        coordination: Coordination,
        rollbacks: RollbackStore,
        prober: Prober,
        announcer: Announcer,
        *,
        completion: Callable[[Supervisor], Completion],
        abort: Abort,
        timetable: Timetable,
        holder: str,
        lease_ttl: timedelta,
        lease_renewal: timedelta | None = None,
    ) -> None:
        """``completion``: builds the ``Completion`` the watchers end runs through (it lets go of runs here)."""
        self.core, self.coordination, self.rollbacks, self.prober = core, coordination, rollbacks, prober
        self.announcer = announcer
        self.abort = abort
        self.timetable = timetable
        self._running = RunningNow(core)
        self.holder, self.lease_ttl = holder, lease_ttl
        self._lock = threading.RLock()
        self._watchers: dict[int, Watcher] = {}
        self._renewals: dict[int, Renewal] = {}
        self._aborting: set[int] = set()
        self._abort_done = threading.Condition(self._lock)
        self._closed = False
        self._draining = False
        self._leases = LeaseKeeper(coordination, holder, lease_ttl, on_lost=self._lease_lost, every=lease_renewal)
        self.completion = completion(self)

    # -- what this process holds ---------------------------------------------------------------------

    @property
    def closed(self) -> bool:
        """Closed, or shutting down: no new run starts here."""
        return self._closed or self._draining

    def drain(self) -> None:
        """The process is shutting down: refuse new starts, keep watching what runs (see ``RunEngine.shut_down``)."""
        self._draining = True

    def hold(self, run_id: int) -> bool:
        """Take the run's lease and keep renewing it; False when another process holds it."""
        if not self.coordination.acquire(run_id, self.holder, self.lease_ttl):
            return False
        self._leases.track(run_id)
        return True

    def watch(
        self,
        run_id: int,
        experiment: Experiment,
        injected: Injected | None,
        *,
        at: float,
        rehearsal: bool,
        recovering: bool = False,
    ) -> None:
        """Start the run's watcher, and its renewals when the adapter renews its faults.

        ``at`` is when the fault went in (``time.monotonic()``; in the past for an adopted run). ``recovering``:
        the fault is already reverted and the watcher only measures the recovery (``injected`` is then None).
        """
        watcher = Watcher(
            self,
            self.prober,
            self.completion,
            run_id,
            experiment,
            steps=self.timetable,
            injected_at=at,
            rehearsal=rehearsal,
        )
        if recovering:
            watcher.recovering_since(time.monotonic())
        renewal = None
        if injected is not None and injected.adapter.renew_every is not None:
            until = at + experiment.max_duration.total_seconds()
            renewal = Renewal(
                run_id, injected.adapter, injected.params, injected.handle, until=until, renewals=self.timetable
            )
        with self._lock:
            self._watchers[run_id] = watcher
            if renewal is not None:
                self._renewals[run_id] = renewal
        if renewal is not None:
            renewal.start()
        watcher.start()

    @contextlib.contextmanager
    def aborting(self, run_id: int) -> Iterator[None]:
        """An abort of the run is under way: renewals and the watcher stop at once (never waiting for a probe).

        A second abort of the same run here (a breach as SIGTERM aborts it, two people at once) waits for the
        first, then finds it ended: one revert, and the second caller is told how the run ended."""
        self.stop(run_id)
        with self._abort_done:
            while run_id in self._aborting:
                self._abort_done.wait()
            self._aborting.add(run_id)
        try:
            yield
        finally:
            with self._abort_done:
                self._aborting.discard(run_id)
                self._abort_done.notify_all()

    def is_aborting(self, run_id: int) -> bool:
        with self._lock:
            return run_id in self._aborting

    def stop(self, run_id: int) -> None:
        """Stop renewing the run's fault and stop its watcher at its next step (a revert begins)."""
        with self._lock:
            renewal = self._renewals.pop(run_id, None)
            watcher = self._watchers.get(run_id)
        if renewal is not None:
            renewal.stop()
        if watcher is not None:
            watcher.halt()

    def let_go(self, run_id: int) -> None:
        """Forget the run here: stop its watcher and renewals, release its lease, drop its rollback copies."""
        self.stop(run_id)
        with self._lock:
            self._watchers.pop(run_id, None)
        self.rollbacks.forget(run_id, mirror=False)
        self._leases.untrack(run_id)
        try:
            self.coordination.release(run_id, self.holder)
        except DB_UNAVAILABLE:
            log.warning("could not release the lease of run %s; it lapses by itself", run_id)
        self.coordination.forget_handles(run_id)

    def hand_over(self, run_id: int) -> bool:
        """Stop renewing the run's lease and mark it handed over; watching and fault renewals go on until
        another replica has adopted it (``forget``). False when the lease could not be marked."""
        self._leases.untrack(run_id)
        try:
            return self.coordination.hand_over(run_id, self.holder)
        except DB_UNAVAILABLE:
            log.warning("could not hand run %s over: the database is unreachable", run_id)
            return False

    def adopted_elsewhere(self, run_id: int) -> bool:
        """Whether another replica holds a live lease on a run we handed over."""
        try:
            return not self.coordination.expired([run_id])
        except DB_UNAVAILABLE:
            return False

    def forget(self, run_id: int) -> None:
        """Another replica watches the run now: stop here without touching its lease or its mirrored handles."""
        self.stop(run_id)
        with self._lock:
            self._watchers.pop(run_id, None)
        self._leases.untrack(run_id)
        self.rollbacks.forget(run_id, mirror=False)

    def watching(self) -> list[int]:
        with self._lock:
            return sorted(self._watchers)

    def responsible_for(self) -> set[int]:
        """Runs this process watches or keeps a rollback of (never orphans, whatever their lease says)."""
        with self._lock:
            watched = set(self._watchers)
        return watched | self.rollbacks.known()

    def close(self) -> None:
        """Stop watchers, renewals and lease renewal without reverting (the leases lapse; see ``RunEngine``).
        The prober is its owner's to close, after this."""
        with self._lock:
            self._closed = True
            watchers = list(self._watchers.values())
            renewals = list(self._renewals.values())
            self._renewals.clear()
        for renewal in renewals:
            renewal.stop()
        for watcher in watchers:
            watcher.halt()
        self._leases.close()

    def _lease_lost(self, run_id: int) -> None:
        self.stop(run_id)
        with self._lock:
            self._watchers.pop(run_id, None)
        self.rollbacks.forget(run_id, mirror=False)

    # -- the watcher's host ----------------------------------------------------------------------------

    def still_running(self, run_id: int) -> bool:
        """Whether the database still says running (True when it cannot be read: keep watching)."""
        return self._running.includes(run_id)

    def breached(self, run_id: int, reason: str) -> None:
        """A stop condition was breached: abort as chaosbot, recording the breach, then measure the recovery."""
        with self._lock:
            watcher = self._watchers.get(run_id)
        recovering = Recovering(watcher.experiment, watcher.rehearsal) if watcher is not None else None
        try:
            self.abort(ENGINE_ACTOR, run_id, reason, breach=reason, recovering=recovering)
        except DomainError as exc:
            log.info("breach of run %s not acted on: %s", run_id, exc.message)

    def ticked(self, run_id: int) -> None:
        """A tick was stored: refresh the progress."""
        self.announcer.progressed(run_id)

    def crashed(self, run_id: int, error: Exception) -> None:
        """The watcher hit a bug: abort, so no fault stays injected with nobody watching it."""
        if self._closed:  # closing cancels probes under the watcher's feet: not a reason to revert
            return
        try:
            self.abort(ENGINE_ACTOR, run_id, wording.internal_error(error))
        except DomainError as exc:
            log.info("run %s not aborted after the watcher crash: %s", run_id, exc.message)

    def detach(self, run_id: int, *, ended_elsewhere: bool) -> None:
        """The watcher is over; when another process ended the run, stop holding its lease here."""
        with self._lock:
            self._watchers.pop(run_id, None)
            closed = self._closed
        if ended_elsewhere and not closed:
            log.info("run %s ended in another process; watcher stopped", run_id)
            self.let_go(run_id)

    def stop_renewing(self, run_id: int) -> None:
        with self._lock:
            renewal = self._renewals.pop(run_id, None)
        if renewal is not None:
            renewal.stop()
