"""The revert itself: every fault of a rollback at once, each retried with backoff while its error is retryable.

``Reverter`` adds what every caller needs around it: record each fault's new state (through the pending
writes, so a database outage never holds a revert back), update the kept rollback, alert loudly on failure.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from functools import partial
from typing import NamedTuple

from adapters import registry
from adapters.base import Adapter, AdapterError, AdapterParams, FaultHandle, RevertStep
from adapters.base import FaultState as BackendState
from bot.alerting.silences import RunSilences
from bot.dashboards.marker import NO_MARKER, FaultWindowMarker
from bot.engine import applying, wording
from bot.engine.rollbacks import FaultTarget, Rollback, RollbackStore
from bot.engine.writes import PendingWrites
from bot.notify import Notifier
from bot.observability import REVERT_FAILURES, REVERTS
from bot.tracing import adapter_call, annotate, carried, span
from bot.words import Words

log = logging.getLogger(__name__)

REVERT_BACKOFF_SECONDS = 0.2
GONE = (BackendState.REVERTED, BackendState.EXPIRED)


class TargetReverted(NamedTuple):
    """One fault's revert: None when reverted, else the last error; the calls made; the last call's steps."""

    error: str | None
    tries: int
    steps: tuple[RevertStep, ...] = ()


@dataclass(frozen=True)
class RevertReport:
    """Per fault: None when reverted, else the last error; how many revert calls were made; and the steps of
    the last call, for adapters whose revert has several (a Chaos Toolkit experiment's rollbacks)."""

    errors: dict[int | None, str | None]
    tries: dict[int | None, int] = field(default_factory=dict)
    steps: dict[int | None, tuple[RevertStep, ...]] = field(default_factory=dict)

    @property
    def most_tries(self) -> int:
        return max(self.tries.values(), default=0)

    @property
    def ok(self) -> bool:
        return all(error is None for error in self.errors.values())

    def failures(self) -> list[str]:
        return [error for error in self.errors.values() if error is not None]

    def words(self) -> Words:
        return wording.reverted(anything=bool(self.errors), ok=self.ok, failures=self.failures())


def adapter_for(target: FaultTarget) -> Adapter:
    """The adapter that reverts this fault, rebuilt from the record alone (a rehearsal's wraps the real one)."""
    return registry.create(target.adapter, dry_run=target.dry_run)


def revert_target(target: FaultTarget, *, attempts: int) -> TargetReverted:
    """Revert one fault: None on success, else the last error; the number of revert calls made; the steps of
    the last call.

    Retries with exponential backoff only while the adapter says the error is ``retryable``; a
    non-retryable error ends the attempts at once. Before giving up, the backend's ``status`` is asked:
    a fault it reports reverted or expired is gone, whatever the revert call said.
    """
    last, tries = "not attempted", 0
    steps: tuple[RevertStep, ...] = ()
    try:
        adapter = adapter_for(target)
        params = adapter.validate(target.params)
        handle = FaultHandle.from_json(target.handle)
    except Exception as exc:  # unknown adapter or params: no retry can help
        error = exc.message if isinstance(exc, AdapterError) else f"{type(exc).__name__}: {exc}"
        return TargetReverted(_gave_up(target, error), 0)
    for attempt in range(max(1, attempts)):
        tries += 1
        try:
            with span(f"{target.adapter}.revert", adapter=target.adapter, call="revert", attempt=tries):
                steps = tuple(adapter.revert(params, handle) or ())
            REVERTS.labels(target.adapter).inc()
            return TargetReverted(None, tries, steps)
        except AdapterError as exc:
            last, steps = exc.message, exc.steps
            if not exc.retryable:
                break
        except Exception as exc:  # any failure must end in the loud alert, never in a lost revert
            log.exception("revert of fault %s raised", target.fault_id)
            last, steps = f"{type(exc).__name__}: {exc}", ()
        if attempt < attempts - 1:
            time.sleep(REVERT_BACKOFF_SECONDS * 2**attempt)
    if _already_gone(adapter, params, handle, target):
        REVERTS.labels(target.adapter).inc()
        return TargetReverted(None, tries, steps)
    return TargetReverted(_gave_up(target, last), tries, steps)


def _already_gone(adapter: Adapter, params: AdapterParams, handle: FaultHandle, target: FaultTarget) -> bool:
    try:
        status = adapter_call(target.adapter, "status", adapter.status)(params, handle)
    except Exception:  # status is a second opinion; its failure changes nothing, but say why it gave none
        log.warning(
            "revert of fault %s (%s) failed and its status could not be read either",
            target.fault_id,
            target.adapter,
            exc_info=True,
        )
        return False
    if status.state in GONE:
        log.warning(
            "revert of fault %s failed, but the backend says %s: %s", target.fault_id, status.state, status.detail
        )
        return True
    return False


def _gave_up(target: FaultTarget, error: str) -> str:
    REVERT_FAILURES.labels(target.adapter).inc()
    return error


def revert_rollback(rollback: Rollback, *, attempts: int) -> RevertReport:
    """Revert every target at once (in parallel when there are several)."""
    if len(rollback.targets) <= 1:
        results = [revert_target(t, attempts=attempts) for t in rollback.targets]
    else:
        with ThreadPoolExecutor(max_workers=len(rollback.targets), thread_name_prefix="chaosbot-revert") as pool:
            reverts = [pool.submit(carried(partial(revert_target, t, attempts=attempts))) for t in rollback.targets]
            results = [revert.result() for revert in reverts]
    ids = [t.fault_id for t in rollback.targets]
    return RevertReport(
        {i: result.error for i, result in zip(ids, results, strict=True)},
        {i: result.tries for i, result in zip(ids, results, strict=True)},
        {i: result.steps for i, result in zip(ids, results, strict=True) if result.steps},
    )


class Reverter:
    """Revert a rollback, record each fault's state, update the kept copy, alert people on failure."""

    def __init__(
        self,
        store: RollbackStore,
        writes: PendingWrites,
        notify: Callable[[Callable[[Notifier], None]], None],
        *,
        attempts: int,
        clock: Callable[[], datetime],
        marker: FaultWindowMarker = NO_MARKER,
        silences: RunSilences | None = None,
    ) -> None:
        self.store, self.writes, self.notify = store, writes, notify
        self.attempts = attempts
        self.clock = clock
        self.marker = marker  # dashboards: the fault window ends at a successful revert
        self.silences = silences  # lifted with every revert, also a failed one: then its alerts must page

    def __call__(self, rollback: Rollback) -> RevertReport:
        report = self.revert_only(rollback)
        self.note(rollback, report)
        return report

    def revert_only(self, rollback: Rollback) -> RevertReport:
        """The backend calls alone: what an abort does first, before any record (``note``)."""
        with span("engine.revert", run_id=rollback.run_id, faults=len(rollback.targets)):
            report = revert_rollback(rollback, attempts=self.attempts)
            annotate(reverted=report.ok)
            return report

    def note(self, rollback: Rollback, report: RevertReport) -> None:
        """After the revert: lift the silences, record each fault's state, update the kept copy, alert on failure."""
        if self.silences is not None:
            self.silences.lift_soon(rollback.run_id)
        if any(fault_id is not None for fault_id in report.errors):
            self.writes.write(applying.faults_reverted(rollback.run_id, report.errors, self.clock(), report.steps))
        if report.ok:
            self.store.reverted(rollback)
            if rollback.targets:
                self.marker.fault_ended(rollback.run_id, at=self.clock())
        else:
            alert = wording.revert_alert(rollback.run_id, report.failures(), report.most_tries, rollback.rollback_steps)
            self.notify(lambda n: n.alert(rollback.run_id, alert))
