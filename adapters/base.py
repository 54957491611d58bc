"""The one small interface every fault-injection backend implements.

Adapters know nothing of Slack or the database. The run engine drives them in
this order: ``validate`` (at catalogue load), ``preflight`` (before any start),
``prepare`` (pure, no I/O: a handle the engine persists *before* touching the
backend), ``inject`` (returns the handle enriched with backend ids, persisted
again), then, while the fault is in place, ``renew`` every ``renew_every`` (only
for adapters that set it: faults injected in short self-healing slices; renewals
stop the moment an abort or revert begins, and when the bot stops, so the fault
lifts by itself), then ``revert`` (idempotent; works from a persisted handle
alone, even in a new process after a crash).

Errors: raise ``AdapterError``; ``retryable=True`` when trying again may help (a
timeout, a 5xx). The engine retries a revert with backoff only while the error is
retryable and gives up at once on a non-retryable one. Before it gives up it asks
``status``: a fault the backend reports ``reverted`` or ``expired`` is gone, and
the revert counts as done. ``halt_all`` (optional) serves the global kill switch.

A revert made of several steps (a Chaos Toolkit experiment's rollbacks) may return a ``RevertStep`` per step,
or attach them to the ``AdapterError`` it raises; the engine stores them with the fault for the retrospective.
"""

from __future__ import annotations

import os
import re
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, ValidationError

_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


@dataclass(frozen=True)
class RevertStep:
    """One step of a revert and how it went, as the retrospective lists it. Never holds a secret value."""

    name: str
    succeeded: bool
    duration_seconds: float
    error: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "status": "succeeded" if self.succeeded else "failed",
            "duration_seconds": round(self.duration_seconds, 3),
            "error": self.error,
        }

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> RevertStep:
        error = raw.get("error")
        return cls(
            name=str(raw.get("name", "")),
            succeeded=raw.get("status") == "succeeded",
            duration_seconds=float(raw.get("duration_seconds") or 0.0),
            error=str(error) if error is not None else None,
        )


class AdapterError(Exception):
    """A backend call failed; ``message`` is written for the person running the experiment. ``steps``: what a
    revert of several steps did before it failed."""

    def __init__(self, message: str, *, retryable: bool = False, steps: Sequence[RevertStep] = ()) -> None:
        super().__init__(message)
        self.message = message
        self.retryable = retryable
        self.steps = tuple(steps)


class AdapterParamsError(AdapterError):
    """The catalogue's parameters for an adapter are invalid. ``field`` is a dotted path."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}" if field else message)
        self.field = field


class MissingSecretError(AdapterError):
    """A ``${VAR}`` named in the catalogue is not set in the environment."""

    def __init__(self, variable: str) -> None:
        super().__init__(f"environment variable {variable} is not set (named in the catalogue as ${{{variable}}})")
        self.variable = variable


class AdapterParams(BaseModel):
    """Base for every adapter's parameter model. Strings may hold ``${VAR}`` references."""

    model_config = ConfigDict(extra="forbid", frozen=True)


@dataclass(frozen=True)
class FaultHandle:
    """Everything needed to revert a fault later, JSON-serialisable, never a secret.

    ``expires_at`` is when the backend heals the fault by itself (None when it never does).
    """

    adapter: str
    run_id: str
    data: dict[str, Any] = field(default_factory=dict)
    expires_at: datetime | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "adapter": self.adapter,
            "run_id": self.run_id,
            "data": self.data,
            "expires_at": self.expires_at.isoformat() if self.expires_at else None,
        }

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> FaultHandle:
        expires = raw.get("expires_at")
        return cls(
            adapter=raw["adapter"],
            run_id=raw["run_id"],
            data=dict(raw.get("data") or {}),
            expires_at=datetime.fromisoformat(expires) if expires else None,
        )


@dataclass(frozen=True)
class Preflight:
    ok: bool
    detail: str


class FaultState(StrEnum):
    ACTIVE = "active"
    REVERTED = "reverted"
    EXPIRED = "expired"
    UNKNOWN = "unknown"


@dataclass(frozen=True)
class FaultStatus:
    state: FaultState
    detail: str = ""


def resolve_env(value: Any, environ: Mapping[str, str] | None = None) -> Any:
    """Replace every ``${VAR}`` in strings (recursively through dicts and lists) from the environment.

    Called at the moment of a backend call so secrets never sit in the database or a message.
    """
    env = os.environ if environ is None else environ
    if isinstance(value, str):

        def substitute(match: re.Match[str]) -> str:
            name = match.group(1)
            if name not in env:
                raise MissingSecretError(name)
            return env[name]

        return _ENV_REF.sub(substitute, value)
    if isinstance(value, Mapping):
        return {key: resolve_env(item, env) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [resolve_env(item, env) for item in value]
    return value


def env_references(value: Any) -> set[str]:
    """Every ``${VAR}`` name used anywhere in ``value``."""
    if isinstance(value, str):
        return set(_ENV_REF.findall(value))
    if isinstance(value, Mapping):
        return set().union(*(env_references(item) for item in value.values())) if value else set()
    if isinstance(value, list | tuple):
        return set().union(*(env_references(item) for item in value)) if value else set()
    return set()


class Adapter(ABC):
    """A fault-injection backend. Subclasses set ``name`` and ``Params`` and implement the methods."""

    name: ClassVar[str]
    Params: ClassVar[type[AdapterParams]]
    #: True when ``inject`` asks the backend to heal the fault by itself after the duration.
    self_expiring: ClassVar[bool] = False
    #: When set, the engine calls ``renew`` this often while the fault is injected, and stops the moment an
    #: abort or revert begins: for faults injected in short self-healing slices.
    renew_every: ClassVar[timedelta | None] = None

    @classmethod
    def validate(cls, params: Mapping[str, Any]) -> AdapterParams:
        """Check catalogue parameters; raise ``AdapterParamsError`` naming the field that is wrong."""
        try:
            return cls.Params.model_validate(dict(params))
        except ValidationError as exc:
            first = exc.errors()[0]
            path = ".".join(str(part) for part in first["loc"])
            raise AdapterParamsError(path, first["msg"]) from exc

    @abstractmethod
    def preflight(self, params: AdapterParams) -> Preflight:
        """Check the target is reachable and the revert path works, without injecting anything."""

    @abstractmethod
    def prepare(self, params: AdapterParams, *, run_id: str, duration: timedelta) -> FaultHandle:
        """Build the handle for a fault about to be injected. Pure: no I/O, deterministic names."""

    @abstractmethod
    def inject(self, params: AdapterParams, handle: FaultHandle, *, duration: timedelta) -> FaultHandle:
        """Inject the fault (self-expiring after ``duration`` where the backend allows it)."""

    @abstractmethod
    def revert(self, params: AdapterParams, handle: FaultHandle) -> Sequence[RevertStep] | None:
        """Undo the fault. Idempotent, bounded by a timeout, safe after a crash or a second call. A revert made
        of several steps may return how each went."""

    @abstractmethod
    def status(self, params: AdapterParams, handle: FaultHandle) -> FaultStatus:
        """What the backend says about this fault now."""

    def renew(self, params: AdapterParams, handle: FaultHandle, *, duration: timedelta) -> None:  # noqa: B027 - optional hook, default no-op
        """Extend a fault injected in slices by one more slice (called every ``renew_every``). Optional."""

    def halt_all(self, params: AdapterParams) -> None:  # noqa: B027 - optional hook, default no-op
        """Stop every fault this backend is running for us (global kill switch). Optional."""
