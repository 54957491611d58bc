"""The per-run watcher: probe every interval, abort on a breach, revert at the maximum duration, then measure
recovery until the steady state is back (or the watcher gives up).

A watcher holds no thread: each step is put on the ``Timetable`` for the moment it is due and runs on its sample
pool; when a step is done it puts the next one on the timetable, so a run has at most one step in flight.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Protocol

from bot.catalogue.models import Experiment
from bot.engine.probes import BreachJudge, Sample
from bot.engine.recovery import Probing, RecoveryMeter, judged, recovery_limit
from bot.engine.timetable import Entry
from bot.logs import log_context
from bot.records.models import MeasurementPhase

log = logging.getLogger(__name__)

FAULT, RECOVERY = MeasurementPhase.FAULT, MeasurementPhase.RECOVERY


class WatcherHost(Protocol):
    """What a watcher needs from whoever supervises it (``bot.engine.supervisor.Supervisor``)."""

    def still_running(self, run_id: int) -> bool: ...
    def breached(self, run_id: int, reason: str) -> None: ...
    def ticked(self, run_id: int) -> None: ...
    def crashed(self, run_id: int, error: Exception) -> None: ...
    def detach(self, run_id: int, *, ended_elsewhere: bool) -> None: ...


class Finishing(Protocol):
    """How a watched run ends (``bot.engine.outcomes.Completion``)."""

    def end_fault(self, run_id: int) -> bool: ...
    def complete(
        self, run_id: int, recovery_seconds: float | None, *, watched: bool, evaluated: bool, sampled: bool = True
    ) -> None: ...


class Sampling(Probing, Protocol):
    """``Probing`` plus the stores a watcher's steps leave to a later batch (``Prober.save_soon``)."""

    def save_soon(self, run_id: int, phase: MeasurementPhase, samples: list[Sample]) -> None: ...


class Steps(Protocol):
    """Where a watcher's next step is put (``bot.engine.timetable.Timetable``)."""

    def sample_at(self, due: float, work: Callable[[], None]) -> Entry: ...


class Watcher:
    """Watches one running run, a step at a time on the timetable; ``halt`` ends it at once, reverting nothing."""

    def __init__(
        self,
        host: WatcherHost,
        prober: Sampling,
        completion: Finishing,
        run_id: int,
        experiment: Experiment,
        *,
        steps: Steps,
        injected_at: float,
        rehearsal: bool = False,
    ) -> None:
        self.host, self.prober, self.completion, self.steps = host, prober, completion, steps
        # A rehearsal (dry run outside production) records probes it cannot evaluate but does not act on them.
        self.rehearsal = rehearsal
        self.run_id = run_id
        self.experiment = experiment
        self.injected_at = injected_at
        self.stop = threading.Event()
        self.phase: MeasurementPhase = FAULT
        self._judge = BreachJudge()
        self._meter: RecoveryMeter | None = None
        self._sampled_fault = False  # a completion with no sample while the fault was on tested nothing
        self._lock = threading.Lock()
        self._next: Entry | None = None
        self._due = 0.0  # when the next sample is due: one interval after the last one was taken
        self._stepping = False
        self._over = threading.Event()
        self._interval = experiment.probe_interval.total_seconds()
        self._deadline = injected_at + experiment.max_duration.total_seconds()

    def start(self) -> None:
        # At least one sample while the fault is on, even when the fault is shorter than the probe interval.
        self._put(self.injected_at + min(self._interval, self.experiment.max_duration.total_seconds() / 2))

    def halt(self) -> None:
        """No step starts after this; one in flight ends at its next check (its samples are dropped)."""
        with self._lock:
            self.stop.set()
            if self._next is not None:
                self._next.cancel()
            idle = not self._stepping and not self._over.is_set()
            if idle:
                self._over.set()
        if idle:
            self.host.detach(self.run_id, ended_elsewhere=False)

    def wait(self, timeout: float) -> bool:
        """Until the watcher is over (True) or ``timeout`` seconds have passed (False)."""
        return self._over.wait(timeout)

    def recovering_since(self, reverted_at: float) -> None:
        """Start in the recovery phase (an adopted run whose fault was already reverted)."""
        self._recovering(reverted_at)
        self._sampled_fault = True  # sampled, if at all, by the replica that handed it over: not ours to judge

    def _recovering(self, reverted_at: float) -> None:
        self.phase, self._meter = RECOVERY, RecoveryMeter(reverted_at, recovery_limit(self.experiment))

    def _put(self, due: float) -> None:
        wake = min(due, self._deadline) if self.phase == FAULT else due
        self._next = self.steps.sample_at(wake, self._step)

    def _step(self) -> None:
        with self._lock:
            if self.stop.is_set() or self._over.is_set():
                return
            self._stepping = True
        ended: bool | None = True
        try:
            with log_context(run_id=self.run_id):
                ended = self._act()
        except Exception as exc:  # a bug must not leave a fault injected with nobody watching it
            log.exception("watcher of run %s crashed", self.run_id)
            self.host.crashed(self.run_id, exc)
        with self._lock:
            self._stepping = False
            if ended is None and not self.stop.is_set():
                self._put(self._due)
                return
            self._over.set()
        self.host.detach(self.run_id, ended_elsewhere=ended is False)

    def _act(self) -> bool | None:
        """One step: None to go on, True when the run has ended here, False when someone else ended it."""
        if not self.host.still_running(self.run_id):
            return False
        if self.phase == FAULT and time.monotonic() >= self._deadline:
            if not self.completion.end_fault(self.run_id):
                return True
            self._recovering(time.monotonic())
        taken = time.monotonic()
        self._due = taken + self._interval
        return True if self._tick(taken) else None

    def _tick(self, taken: float) -> bool:
        """Probe once and act on the samples; True when the run has ended."""
        conditions = self.experiment.stop_conditions
        if not conditions:
            if self.phase == RECOVERY:
                self._complete(None)
                return True
            return False
        samples = self.prober.sample(conditions)
        if self.stop.is_set():
            return True  # aborted while probing: the abort has already reverted; drop the samples
        self.prober.save_soon(self.run_id, self.phase, samples)
        samples = judged(samples, rehearsal=self.rehearsal)
        if self.phase == FAULT:
            self._sampled_fault = self._sampled_fault or bool(samples)
            reason = next((r for r in map(self._judge.breach, samples) if r), None)
            if reason is not None:
                self.host.breached(self.run_id, reason)
                return True
        elif self._recovered(taken, samples):
            return True
        self.host.ticked(self.run_id)
        return False

    def _recovered(self, taken: float, samples: list[Sample]) -> bool:
        assert self._meter is not None  # set when the recovery phase began
        measured = self._meter.observe(taken, samples)
        if measured is None:
            return False
        self._complete(measured.seconds, evaluated=measured.evaluated)
        return True

    def _complete(self, recovery_seconds: float | None, *, evaluated: bool = True) -> None:
        watched = bool(self.experiment.stop_conditions)
        self.completion.complete(
            self.run_id, recovery_seconds, watched=watched, evaluated=evaluated, sampled=self._sampled_fault
        )
