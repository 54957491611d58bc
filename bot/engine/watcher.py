"""The per-run watcher thread: probe every interval, abort on a breach, revert at the maximum duration,
then measure recovery until the steady state is back (or the watcher gives up)."""

from __future__ import annotations

import logging
import threading
import time
from typing import Protocol

from bot.catalogue.models import Experiment
from bot.engine.probes import BreachJudge, Sample
from bot.engine.recovery import Probing, RecoveryMeter, judged, recovery_limit
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


class Watcher:
    """Watches one running run in its own thread; ``stop`` ends it at once, without reverting anything."""

    def __init__(
        self,
        host: WatcherHost,
        prober: Probing,
        completion: Finishing,
        run_id: int,
        experiment: Experiment,
        *,
        injected_at: float,
        rehearsal: bool = False,
    ) -> None:
        self.host, self.prober, self.completion = host, prober, completion
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
        self.thread = threading.Thread(target=self._run, name=f"chaosbot-watch-{run_id}", daemon=True)

    def start(self) -> None:
        self.thread.start()

    def recovering_since(self, reverted_at: float) -> None:
        """Start in the recovery phase (an adopted run whose fault was already reverted)."""
        self._recovering(reverted_at)
        self._sampled_fault = True  # sampled, if at all, by the replica that handed it over: not ours to judge

    def _recovering(self, reverted_at: float) -> None:
        self.phase, self._meter = RECOVERY, RecoveryMeter(reverted_at, recovery_limit(self.experiment))

    def _run(self) -> None:
        ended_elsewhere = False
        try:
            with log_context(run_id=self.run_id):
                ended_elsewhere = not self._loop()
        except Exception as exc:  # a bug must not leave a fault injected with nobody watching it
            log.exception("watcher of run %s crashed", self.run_id)
            self.host.crashed(self.run_id, exc)
        finally:
            self.host.detach(self.run_id, ended_elsewhere=ended_elsewhere)

    def _loop(self) -> bool:
        """Tick until the run ends here (True) or someone else ended it (False)."""
        interval = self.experiment.probe_interval.total_seconds()
        deadline = self.injected_at + self.experiment.max_duration.total_seconds()
        # At least one sample while the fault is on, even when the fault is shorter than the probe interval.
        next_tick = self.injected_at + min(interval, self.experiment.max_duration.total_seconds() / 2)
        while True:
            wake = min(next_tick, deadline) if self.phase == FAULT else next_tick
            if self.stop.wait(max(0.0, wake - time.monotonic())):
                return True
            if not self.host.still_running(self.run_id):
                return False
            if self.phase == FAULT and time.monotonic() >= deadline:
                if not self.completion.end_fault(self.run_id):
                    return True
                self._recovering(time.monotonic())
            taken = time.monotonic()
            next_tick = taken + interval
            if self._tick(taken):
                return True

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
        self.prober.save(self.run_id, self.phase, samples)
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
