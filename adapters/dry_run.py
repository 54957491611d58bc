"""Rehearsal adapter: records what a fault would do, touching nothing (``/chaos start RUN-n --dry-run``).

Two ways in, one behaviour:

- ``registry.create(name, dry_run=True)`` wraps the real adapter ``name``: it takes that adapter's own
  parameters, validated by its rules (a rehearsal catches catalogue mistakes). The engine needs to know
  nothing of how a rehearsal is parameterised.
- A catalogue entry may name ``dry_run`` itself, with ``would_use`` and ``params``.
"""

from __future__ import annotations

import os
import threading
from collections import deque
from collections.abc import Mapping
from dataclasses import replace
from datetime import timedelta
from functools import cache
from typing import Any, ClassVar

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


class Journal:
    """The most recent dry-run calls of one adapter instance: bounded and thread-safe."""

    def __init__(self, size: int = JOURNAL_SIZE) -> None:
        self.size = size
        self._entries: deque[dict[str, Any]] = deque(maxlen=size)
        self._lock = threading.Lock()

    def record(self, action: str, run_id: str, would_use: str, detail: str) -> dict[str, Any]:
        entry = {
            "at": utcnow().isoformat(),
            "run_id": run_id,
            "action": action,
            "would_use": would_use,
            "detail": detail,
        }
        with self._lock:
            self._entries.append(entry)
        return dict(entry)

    def entries(self, run_id: str | None = None) -> list[dict[str, Any]]:
        """Oldest first: every run's, or one run's."""
        with self._lock:
            entries = list(self._entries)
        return [dict(entry) for entry in entries if run_id is None or entry["run_id"] == run_id]

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()


class DryRunParams(AdapterParams):
    would_use: str = Field(min_length=1)
    params: dict[str, Any] = Field(default_factory=dict)


class DryRunAdapter(Adapter):
    """Rehearse a fault: every call succeeds and is recorded, nothing is contacted.

    Parameters (when named in the catalogue as ``dry_run``):

    - ``would_use`` (required): the name of the real adapter (must be a known one, not ``dry_run``).
    - ``params`` (default ``{}``): that adapter's parameters; they are validated with its rules.
      ``${VAR}`` references are listed but never resolved.

    A wrapping rehearsal (``DryRunAdapter.wrapping("http")``) takes the real adapter's parameters as they are.

    Each call (preflight, prepare, inject, revert, status) is appended to the returned handle's ``data.calls``
    (when it returns a handle) and to this instance's ``journal`` (last 500 calls). The handle also names the
    real adapter (``data.would_use``). ``expires_at`` mirrors the real adapter's self-expiry. Status is
    "reverted" once this instance recorded a revert for the run, "expired" after ``expires_at``, else "active".
    """

    name = "dry_run"
    Params = DryRunParams
    self_expiring = False
    #: The real adapter a wrapping rehearsal stands in for (None: the catalogue names ``dry_run`` itself).
    rehearses: ClassVar[str | None] = None

    def __init__(self, journal: Journal | None = None) -> None:
        self.journal = journal or Journal()

    @classmethod
    def wrapping(cls, name: str) -> type[DryRunAdapter]:
        """The rehearsal of the real adapter ``name``, taking that adapter's own parameters."""
        return _wrapping(cls, name)

    @classmethod
    def validate(cls, params: Mapping[str, Any]) -> AdapterParams:
        if cls.rehearses is not None:
            params = {"would_use": cls.rehearses, "params": dict(params)}
        validated = super().validate(params)
        _target(params_as(DryRunParams, validated))
        return validated

    def preflight(self, params: AdapterParams) -> Preflight:
        p = _checked(params)
        missing = sorted(name for name in env_references(p.params) if name not in os.environ)
        detail = f"dry run of {p.would_use}: nothing contacted"
        if missing:
            detail += f"; the real run would fail, not set: {', '.join(missing)}"
        self.journal.record("preflight", "-", p.would_use, detail)
        return Preflight(ok=True, detail=detail)

    def prepare(self, params: AdapterParams, *, run_id: str, duration: timedelta) -> FaultHandle:
        p = _checked(params)
        seconds = whole_seconds(duration)
        entry = self.journal.record(
            "prepare", run_id, p.would_use, f"would prepare a {seconds}s fault with {p.would_use}"
        )
        needs = sorted(env_references(p.params))
        data = {"dry_run": True, "would_use": p.would_use, "needs_env": needs, "calls": [entry]}
        return FaultHandle(adapter=self.name, run_id=run_id, data=data)

    def inject(self, params: AdapterParams, handle: FaultHandle, *, duration: timedelta) -> FaultHandle:
        p = _checked(params)
        detail = f"would inject with {p.would_use} for {whole_seconds(duration)}s"
        entry = self.journal.record("inject", handle.run_id, p.would_use, detail)
        data = {**handle.data, "calls": [*handle.data.get("calls", []), entry]}
        return replace(handle, data=data, expires_at=expiry(duration) if _self_expiring(p) else None)

    def revert(self, params: AdapterParams, handle: FaultHandle) -> None:
        p = _checked(params)
        self.journal.record("revert", handle.run_id, p.would_use, f"would revert with {p.would_use}")

    def status(self, params: AdapterParams, handle: FaultHandle) -> FaultStatus:
        p = _checked(params)
        reverted = any(entry["action"] == "revert" for entry in self.journal.entries(handle.run_id))
        if reverted:
            state = FaultState.REVERTED
        else:
            state = FaultState.EXPIRED if has_expired(handle.expires_at) else FaultState.ACTIVE
        self.journal.record("status", handle.run_id, p.would_use, f"reported {state.value}")
        return FaultStatus(state, f"dry run of {p.would_use}: {state.value}")


@cache
def _wrapping(base: type[DryRunAdapter], name: str) -> type[DryRunAdapter]:
    if name == DryRunAdapter.name:
        return base  # a catalogue entry that already rehearses is used as it is
    registry.adapter_class(name)  # unknown names fail here, before anything is built
    return type(f"DryRun[{name}]", (base,), {"rehearses": name, "__doc__": f"A rehearsal of the {name} adapter."})


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
