"""Rehearsal adapter: records what a fault would do, touching nothing (``/chaos start RUN-n --dry-run``)."""

from __future__ import annotations

import os
import threading
from collections import deque
from collections.abc import Mapping
from dataclasses import replace
from datetime import timedelta
from typing import Any

from pydantic import Field

from adapters import registry
from adapters._common import expiry, has_expired, params_as, utcnow, whole_seconds
from adapters.base import (
    Adapter,
    AdapterParams,
    AdapterParamsError,
    FaultHandle,
    FaultState,
    FaultStatus,
    Preflight,
    env_references,
)

JOURNAL_SIZE = 500

_journal: deque[dict[str, Any]] = deque(maxlen=JOURNAL_SIZE)
_journal_lock = threading.Lock()


def journal(run_id: str | None = None) -> list[dict[str, Any]]:
    """The most recent dry-run calls, oldest first (all runs, or one run)."""
    with _journal_lock:
        entries = list(_journal)
    return [dict(entry) for entry in entries if run_id is None or entry["run_id"] == run_id]


def clear_journal() -> None:
    with _journal_lock:
        _journal.clear()


def _record(action: str, run_id: str, would_use: str, detail: str) -> dict[str, Any]:
    entry = {"at": utcnow().isoformat(), "run_id": run_id, "action": action, "would_use": would_use, "detail": detail}
    with _journal_lock:
        _journal.append(entry)
    return dict(entry)


class DryRunParams(AdapterParams):
    would_use: str = Field(min_length=1)
    params: dict[str, Any] = Field(default_factory=dict)


class DryRunAdapter(Adapter):
    """Rehearse a fault: every call succeeds and is recorded, nothing is contacted.

    Parameters:

    - ``would_use`` (required): the name of the real adapter (must be a known one, not ``dry_run``).
    - ``params`` (default ``{}``): that adapter's parameters; they are validated with its rules, so a
      rehearsal catches catalogue mistakes. ``${VAR}`` references are listed but never resolved.

    Each call (preflight, prepare, inject, revert, status) is appended to the returned handle's ``data.calls``
    (when it returns a handle) and to a bounded, thread-safe in-memory journal (last 500 calls) read with
    ``journal()``. ``expires_at`` mirrors the real adapter's self-expiry. Status is "reverted" once a revert
    was recorded for the run, "expired" after ``expires_at``, otherwise "active".
    """

    name = "dry_run"
    Params = DryRunParams
    self_expiring = False

    @classmethod
    def validate(cls, params: Mapping[str, Any]) -> AdapterParams:
        validated = super().validate(params)
        _target(params_as(DryRunParams, validated))
        return validated

    def preflight(self, params: AdapterParams) -> Preflight:
        p = _checked(params)
        missing = sorted(name for name in env_references(p.params) if name not in os.environ)
        detail = f"dry run of {p.would_use}: nothing contacted"
        if missing:
            detail += f"; the real run would fail, not set: {', '.join(missing)}"
        _record("preflight", "-", p.would_use, detail)
        return Preflight(ok=True, detail=detail)

    def prepare(self, params: AdapterParams, *, run_id: str, duration: timedelta) -> FaultHandle:
        p = _checked(params)
        seconds = whole_seconds(duration)
        entry = _record("prepare", run_id, p.would_use, f"would prepare a {seconds}s fault with {p.would_use}")
        needs = sorted(env_references(p.params))
        data = {"dry_run": True, "would_use": p.would_use, "needs_env": needs, "calls": [entry]}
        return FaultHandle(adapter=self.name, run_id=run_id, data=data)

    def inject(self, params: AdapterParams, handle: FaultHandle, *, duration: timedelta) -> FaultHandle:
        p = _checked(params)
        detail = f"would inject with {p.would_use} for {whole_seconds(duration)}s"
        entry = _record("inject", handle.run_id, p.would_use, detail)
        data = {**handle.data, "calls": [*handle.data.get("calls", []), entry]}
        return replace(handle, data=data, expires_at=expiry(duration) if _self_expiring(p) else None)

    def revert(self, params: AdapterParams, handle: FaultHandle) -> None:
        p = _checked(params)
        _record("revert", handle.run_id, p.would_use, f"would revert with {p.would_use}")

    def status(self, params: AdapterParams, handle: FaultHandle) -> FaultStatus:
        p = _checked(params)
        reverted = any(entry["action"] == "revert" for entry in journal(handle.run_id))
        if reverted:
            state = FaultState.REVERTED
        else:
            state = FaultState.EXPIRED if has_expired(handle.expires_at) else FaultState.ACTIVE
        _record("status", handle.run_id, p.would_use, f"reported {state.value}")
        return FaultStatus(state, f"dry run of {p.would_use}: {state.value}")


def _checked(params: AdapterParams) -> DryRunParams:
    p = params_as(DryRunParams, params)
    _target(p)
    return p


def _target(p: DryRunParams) -> type[Adapter]:
    """The real adapter class, after checking its parameters; errors name the dry-run field."""
    if p.would_use == DryRunAdapter.name:
        raise AdapterParamsError("would_use", "a dry run cannot rehearse another dry run")
    try:
        target = registry.adapter_class(p.would_use)
    except registry.UnknownAdapterError as exc:
        raise AdapterParamsError("would_use", str(exc)) from exc
    try:
        target.validate(p.params)
    except AdapterParamsError as exc:
        field = f"params.{exc.field}" if exc.field else "params"
        raise AdapterParamsError(field, exc.message.removeprefix(f"{exc.field}: ")) from exc
    return target


def _self_expiring(p: DryRunParams) -> bool:
    return _target(p).self_expiring or bool(p.params.get("self_expiring"))
