"""``Prober``: samples stop conditions (the start's baseline, the watchers' ticks) and stores the samples.

A watcher's samples are stored in batches (``save_soon``): every ``FLUSH_SECONDS`` one transaction stores what
every run sampled meanwhile, instead of one transaction per sample (a hundred runs probed every second were a
hundred commits a second). ``flush`` stores them at once; a run's end is recorded only after it.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

import httpx

from bot.catalogue.models import StopCondition
from bot.engine.outage import DB_UNAVAILABLE
from bot.engine.probes import Sample, take_sample
from bot.engine.timetable import Entry
from bot.engine.workers import Workers
from bot.records import service as records
from bot.records.models import MeasurementPhase
from bot.tracing import annotate, span
from storage.db import Database

log = logging.getLogger(__name__)

PROBE_WORKERS = 16
CLOSE_SECONDS = 1.0  # a probe in flight at close gets this long; the process does not wait on a slow target
FLUSH_SECONDS = 0.5


class Later(Protocol):
    """Where the next batch of samples is stored from (``bot.engine.timetable.Timetable``)."""

    def sample_at(self, due: float, work: Callable[[], None]) -> Entry: ...


@dataclass(frozen=True)
class _Taken:
    run_id: int
    phase: MeasurementPhase
    samples: list[Sample]
    at: datetime


class Prober:
    """Owns the probes' thread pool and HTTP client (made at the first probe) and stops both in ``close``."""

    def __init__(
        self, db: Database, clock: Callable[[], datetime], later: Later, *, http: httpx.Client | None = None
    ) -> None:
        self.db, self.clock, self.later = db, clock, later
        self._batch: list[_Taken] = []
        self._flushing = threading.Lock()  # one batch written at a time, in the order it was taken
        self._given_http = http
        self._own_http: httpx.Client | None = None
        self._lock = threading.Lock()
        self._probes = Workers(PROBE_WORKERS, "chaosbot-probe")

    def sample(self, conditions: Sequence[StopCondition]) -> list[Sample]:
        """One sample of each condition, probed in parallel."""
        http = self._http()
        if len(conditions) == 1:
            return [_sampled(conditions[0], http)]
        return self._probes.map(lambda condition: _sampled(condition, http), conditions)

    def save(self, run_id: int, phase: MeasurementPhase, samples: list[Sample]) -> None:
        """Store samples as measurements (dropped, with a warning, while the database is down)."""
        try:
            with self.db.transaction() as session:
                records.add_samples(session, run_id=run_id, phase=phase, samples=samples, at=self.clock())
        except DB_UNAVAILABLE:
            log.warning("database unavailable: %d samples of run %s not stored", len(samples), run_id)

    def save_soon(self, run_id: int, phase: MeasurementPhase, samples: list[Sample]) -> None:
        """Store samples with the next batch, dated now (see the module docstring)."""
        taken = _Taken(run_id, phase, samples, self.clock())
        with self._lock:
            first = not self._batch
            self._batch.append(taken)
        if first:
            self.later.sample_at(time.monotonic() + FLUSH_SECONDS, self.flush)

    def flush(self) -> None:
        """Store every sample waiting for the batch, in one transaction (dropped while the database is down)."""
        with self._flushing:
            with self._lock:
                batch, self._batch = self._batch, []
            if not batch:
                return
            try:
                with self.db.transaction() as session:
                    for taken in batch:
                        records.add_samples(
                            session, run_id=taken.run_id, phase=taken.phase, samples=taken.samples, at=taken.at
                        )
            except DB_UNAVAILABLE:
                log.warning("database unavailable: %d batched samples not stored", sum(len(t.samples) for t in batch))

    def close(self) -> None:
        """Store the batch, cancel queued probes, give those in flight ``CLOSE_SECONDS``, close the client."""
        self.flush()
        self._probes.close(deadline_seconds=CLOSE_SECONDS)
        with self._lock:
            own, self._own_http = self._own_http, None
        if own is not None:
            own.close()

    def _http(self) -> httpx.Client:
        """The probes' client, made at the first probe: its CA bundle (2.5 MB) is not loaded in an idle bot."""
        if self._given_http is not None:
            return self._given_http
        with self._lock:
            if self._own_http is None:
                self._own_http = httpx.Client(follow_redirects=False)
            return self._own_http


def _sampled(condition: StopCondition, http: httpx.Client) -> Sample:
    """One sample, traced: the condition's name and probe kind, never its URL or query (they may hold secrets)."""
    with span("probe.sample", condition=condition.name, probe=condition.probe.kind):
        sample = take_sample(condition, http)
        annotate(ok=sample.ok, probe_error=sample.error, value=sample.value)
        return sample
