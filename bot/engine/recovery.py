"""Recovery after the revert: when the steady state is back (``RecoveryMeter``), and the watch that goes on
after a stop condition aborted a run (``AfterAbort``): its probes keep sampling after the revert until the
recovery is measured, as they do after a completion, so its retrospective shows the rise, the abort and the
recovery. The run is recorded aborted at once; only its recovery (and so its retrospective) waits."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Protocol

from bot.catalogue.models import Experiment, StopCondition
from bot.engine.probes import Sample
from bot.logs import log_context
from bot.records.models import MeasurementPhase

log = logging.getLogger(__name__)

RECOVERED_AFTER_OK_TICKS = 2
MIN_RECOVERY_WATCH = timedelta(minutes=5)
JOIN_SECONDS = 0.5


def recovery_limit(experiment: Experiment) -> timedelta:
    """How long to wait for the steady state after the revert before calling the hypothesis refuted."""
    return max(experiment.rto * 2, MIN_RECOVERY_WATCH)


def judged(samples: list[Sample], *, rehearsal: bool) -> list[Sample]:
    """The samples that count: in a rehearsal, a probe that could not be evaluated does not."""
    return [sample for sample in samples if not (rehearsal and sample.error)]


class Probing(Protocol):
    """How stop conditions are sampled and stored (``bot.engine.prober.Prober``)."""

    def sample(self, conditions: Sequence[StopCondition]) -> list[Sample]: ...
    def save(self, run_id: int, phase: MeasurementPhase, samples: list[Sample]) -> None: ...


@dataclass(frozen=True)
class Measured:
    """The recovery: seconds from the revert to the steady state (None: it did not come back in time)."""

    seconds: float | None
    evaluated: bool = True  # False: a rehearsal whose probes could not be evaluated, nothing to wait for


class RecoveryMeter:
    """Counts ticks after the revert (``time.monotonic()`` moments): back after two good ticks in a row."""

    def __init__(self, reverted_at: float, limit: timedelta) -> None:
        self.reverted_at = reverted_at
        self.limit = limit.total_seconds()
        self._ok_since: float | None = None
        self._ok_ticks = 0

    def observe(self, taken: float, samples: list[Sample]) -> Measured | None:
        """The recovery once it is known, or None: keep probing."""
        if not samples:
            return Measured(None, evaluated=False)
        if all(sample.ok for sample in samples):
            self._ok_ticks += 1
            self._ok_since = self._ok_since if self._ok_since is not None else taken
        else:
            self._ok_ticks, self._ok_since = 0, None
        if self._ok_ticks >= RECOVERED_AFTER_OK_TICKS and self._ok_since is not None:
            return Measured(max(0.0, self._ok_since - self.reverted_at))
        if taken - self.reverted_at >= self.limit:
            return Measured(None)
        return None


@dataclass(frozen=True)
class Recovering:
    """What the watch after an abort needs: the run's stop conditions and whether it is a rehearsal."""

    experiment: Experiment
    rehearsal: bool

    @property
    def limit(self) -> timedelta:
        return recovery_limit(self.experiment)


class AfterAbort:
    """Measures the recovery of runs a stop condition aborted, each on a thread of its own.

    ``measured(run_id, seconds, recovering)`` is told the result (seconds None: not back within the limit).
    ``close`` stops every watch without a result; the run's retrospective then waits no longer than the
    limit recorded with its end (``Outcome.recovery_watch_until``) before a sweep posts it.
    """

    def __init__(self, prober: Probing, measured: Callable[[int, float | None, Recovering], None]) -> None:
        self.prober = prober
        self.measured = measured
        self._closed = threading.Event()
        self._threads: dict[int, threading.Thread] = {}
        self._lock = threading.Lock()

    def watch(self, run_id: int, recovering: Recovering, *, reverted_at: float) -> None:
        """Probe the run's stop conditions every ``probe_interval`` from ``reverted_at`` until it is back."""
        thread = threading.Thread(
            target=self._watch,
            args=(run_id, recovering, reverted_at),
            name=f"chaosbot-recovery-{run_id}",
            daemon=True,
        )
        with self._lock:  # started under the lock: ``close`` never joins a thread that has not started
            if self._closed.is_set():
                return
            self._threads[run_id] = thread
            thread.start()

    def watching(self) -> list[int]:
        with self._lock:
            return sorted(self._threads)

    def close(self) -> None:
        self._closed.set()
        with self._lock:
            threads = list(self._threads.values())
        for thread in threads:
            thread.join(timeout=JOIN_SECONDS)

    def _watch(self, run_id: int, recovering: Recovering, reverted_at: float) -> None:
        try:
            with log_context(run_id=run_id):
                measured = self._measure(run_id, recovering, reverted_at)
                if measured is not None:
                    self.measured(run_id, measured.seconds, recovering)
        except Exception:  # the fault is already reverted: a bug here costs only the measurement
            log.exception("the recovery watch of run %s failed", run_id)
        finally:
            with self._lock:
                self._threads.pop(run_id, None)

    def _measure(self, run_id: int, recovering: Recovering, reverted_at: float) -> Measured | None:
        conditions = recovering.experiment.stop_conditions
        interval = recovering.experiment.probe_interval.total_seconds()
        meter = RecoveryMeter(reverted_at, recovering.limit)
        next_tick = reverted_at
        while not self._closed.wait(max(0.0, next_tick - time.monotonic())):
            taken = time.monotonic()
            next_tick = taken + interval
            samples = self.prober.sample(conditions)
            if self._closed.is_set():
                return None
            self.prober.save(run_id, MeasurementPhase.RECOVERY, samples)
            measured = meter.observe(taken, judged(samples, rehearsal=recovering.rehearsal))
            if measured is not None:
                return measured
        return None
