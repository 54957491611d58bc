"""Small helpers shared by every adapter (HTTP plumbing lives in ``adapters._http``)."""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from adapters.base import AdapterError, AdapterParams, AdapterParamsError, Preflight

P = TypeVar("P", bound=AdapterParams)
PreflightMethod = Callable[[Any, AdapterParams], Preflight]


def utcnow() -> datetime:
    return datetime.now(UTC)


def whole_seconds(duration: timedelta) -> int:
    """The duration rounded up to whole seconds; backends take integers and a fault must never be shorter."""
    seconds = math.ceil(duration.total_seconds())
    if seconds <= 0:
        raise AdapterParamsError("duration", "must be positive")
    return seconds


def expiry(duration: timedelta) -> datetime:
    return utcnow() + duration


def has_expired(expires_at: datetime | None) -> bool:
    return expires_at is not None and utcnow() >= expires_at


def params_as(model: type[P], params: AdapterParams | dict[str, Any]) -> P:
    """The engine passes validated params; accept a plain dict or another model too, re-validating it."""
    if isinstance(params, model):
        return params
    raw = params.model_dump(by_alias=True) if isinstance(params, BaseModel) else dict(params)
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        raise AdapterParamsError(".".join(str(part) for part in first["loc"]), first["msg"]) from exc


def reports_failures(method: PreflightMethod) -> PreflightMethod:
    """Turn an ``AdapterError`` raised during a preflight into a failed ``Preflight`` with its message."""

    @functools.wraps(method)
    def wrapper(self: Any, params: AdapterParams) -> Preflight:
        try:
            return method(self, params)
        except AdapterError as exc:
            return Preflight(ok=False, detail=exc.message)

    return wrapper


def require_env_reference(value: str | None) -> str | None:
    """Secrets must come from the environment: a literal value would sit in the catalogue and the database."""
    if value is not None and "${" not in value:
        raise ValueError("must reference an environment variable such as ${MY_SECRET}, not hold a literal secret")
    return value
