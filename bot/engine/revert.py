"""Revert plans (what must be undone for a run) and the revert itself: direct, retried with backoff."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from typing import Any

from adapters import registry
from adapters.base import AdapterError, FaultHandle
from bot.engine.records import DB_UNAVAILABLE
from bot.errors import DomainError
from bot.observability import REVERT_FAILURES, REVERTS
from bot.runs.models import FaultRecord

log = logging.getLogger(__name__)

REVERT_BACKOFF_SECONDS = 0.2
WRITE_RETRY_DELAYS = (0.5, 1, 2, 4, 8, 15, 30, 30, 30, 60, 60, 60)  # about five minutes in all


@dataclass(frozen=True)
class FaultTarget:
    """One fault to revert: the adapter, its catalogue params (``${VAR}`` unresolved) and the persisted handle."""

    fault_id: int | None
    adapter: str
    params: dict[str, Any]
    handle: dict[str, Any]


@dataclass(frozen=True)
class RevertPlan:
    """Everything needed to revert a run's faults without the database (also mirrored in Redis)."""

    run_id: int
    rollback_steps: str
    rto_seconds: float
    targets: tuple[FaultTarget, ...] = ()

    def with_target(self, target: FaultTarget) -> RevertPlan:
        others = tuple(t for t in self.targets if t.fault_id != target.fault_id)
        return replace(self, targets=(*others, target))

    def to_json(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "rollback_steps": self.rollback_steps,
            "rto_seconds": self.rto_seconds,
            "targets": [vars(target) for target in self.targets],
        }

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> RevertPlan:
        targets = tuple(FaultTarget(**target) for target in raw.get("targets", []))
        return cls(int(raw["run_id"]), str(raw["rollback_steps"]), float(raw["rto_seconds"]), targets)


def targets_from(records: Iterable[FaultRecord], params: dict[str, Any]) -> tuple[FaultTarget, ...]:
    return tuple(FaultTarget(r.id, r.adapter, params, dict(r.handle)) for r in records)


@dataclass(frozen=True)
class RevertReport:
    """Per fault: None when reverted, else the last error."""

    errors: dict[int | None, str | None]

    @property
    def ok(self) -> bool:
        return all(error is None for error in self.errors.values())

    def failures(self) -> list[str]:
        return [error for error in self.errors.values() if error is not None]


def revert_target(target: FaultTarget, *, attempts: int) -> str | None:
    """Revert one fault, retrying with exponential backoff; None on success, else the last error."""
    last = "not attempted"
    for attempt in range(max(1, attempts)):
        try:
            adapter = registry.create(target.adapter)
            adapter.revert(adapter.validate(target.params), FaultHandle.from_json(target.handle))
            REVERTS.labels(target.adapter).inc()
            return None
        except AdapterError as exc:
            last = exc.message
        except Exception as exc:  # any failure must end in the loud alert, never in a lost revert
            log.exception("revert of fault %s raised", target.fault_id)
            last = f"{type(exc).__name__}: {exc}"
        if attempt < attempts - 1:
            time.sleep(REVERT_BACKOFF_SECONDS * 2**attempt)
    REVERT_FAILURES.labels(target.adapter).inc()
    return last


def revert_plan(plan: RevertPlan, *, attempts: int) -> RevertReport:
    """Revert every target of the plan at once (in parallel when there are several)."""
    if len(plan.targets) <= 1:
        return RevertReport({t.fault_id: revert_target(t, attempts=attempts) for t in plan.targets})
    with ThreadPoolExecutor(max_workers=len(plan.targets), thread_name_prefix="chaosbot-revert") as pool:
        results = pool.map(lambda t: revert_target(t, attempts=attempts), plan.targets)
        return RevertReport(dict(zip([t.fault_id for t in plan.targets], results, strict=True)))


def write_soon(write: Callable[[], None], *, what: str) -> None:
    """Try ``write`` now; if the database is unreachable, keep retrying it in a background thread."""
    try:
        write()
    except DB_UNAVAILABLE as exc:
        log.warning("database unavailable while %s (%s); retrying in the background", what, exc)
        threading.Thread(target=_retry, args=(write, what), name="chaosbot-record", daemon=True).start()


def _retry(write: Callable[[], None], what: str) -> None:
    for delay in WRITE_RETRY_DELAYS:
        time.sleep(delay)
        try:
            write()
            log.info("recorded after a database outage: %s", what)
            return
        except DB_UNAVAILABLE:
            continue
        except DomainError as exc:  # e.g. another replica ended the run meanwhile
            log.info("not recording %s: %s", what, exc.message)
            return
        except Exception:
            log.exception("giving up %s", what)
            return
    log.error("database still unavailable; could not record: %s", what)
