"""What the run engine calls at inject and at revert to mark dashboards; ``NO_MARKER`` when none is configured."""

from __future__ import annotations

from concurrent.futures import Future
from datetime import datetime
from typing import Protocol


class FaultWindowMarker(Protocol):
    """Both calls return at once and never raise (``GrafanaAnnotations`` runs them on its own thread)."""

    def fault_started(
        self, run_id: int, *, label: str, experiment_id: str, at: datetime, text: str
    ) -> Future[None]: ...

    def fault_ended(self, run_id: int, *, at: datetime) -> Future[None]: ...

    def resend_ends(self) -> Future[None]: ...

    def close(self) -> None: ...


class _NoMarker:
    def fault_started(self, run_id: int, *, label: str, experiment_id: str, at: datetime, text: str) -> Future[None]:
        return _done()

    def fault_ended(self, run_id: int, *, at: datetime) -> Future[None]:
        return _done()

    def resend_ends(self) -> Future[None]:
        return _done()

    def close(self) -> None:
        pass


def _done() -> Future[None]:
    future: Future[None] = Future()
    future.set_result(None)
    return future


NO_MARKER: FaultWindowMarker = _NoMarker()
