"""Scripted toggles and feature flags: any fault that an HTTP API can switch on and off."""

from __future__ import annotations

import os
from dataclasses import replace
from datetime import timedelta
from typing import Any, Literal

import httpx
from pydantic import ConfigDict, Field, field_validator

from adapters._common import expiry, has_expired, params_as, reports_failures, whole_seconds
from adapters._http import DEFAULT_OK, HttpTuning, Request, send
from adapters.base import (
    Adapter,
    AdapterParams,
    FaultHandle,
    FaultState,
    FaultStatus,
    Preflight,
    env_references,
    resolve_env,
)

Method = Literal["GET", "POST", "PUT", "PATCH", "DELETE"]
RUN_ID = "{{run_id}}"
DURATION = "{{duration_seconds}}"


class HttpRequestSpec(AdapterParams):
    """One request: ``method``, ``url``, ``headers``, optional ``json`` body, ``expected_status``."""

    model_config = ConfigDict(populate_by_name=True)

    method: Method = "POST"
    url: str
    headers: dict[str, str] = Field(default_factory=dict)
    body: Any = Field(default=None, alias="json")
    expected_status: list[int] = Field(default_factory=lambda: list(DEFAULT_OK), min_length=1)

    @field_validator("url")
    @classmethod
    def _absolute(cls, url: str) -> str:
        if not url.startswith(("http://", "https://", "${")):
            raise ValueError("must start with http://, https:// or a ${VAR} reference")
        return url


class HttpCheckSpec(HttpRequestSpec):
    """A read-only request (``preflight``/``status``); ``active_when_body_contains`` applies to status."""

    method: Method = "GET"
    active_when_body_contains: str | None = None


class HttpParams(HttpTuning):
    inject: HttpRequestSpec
    revert: HttpRequestSpec
    status: HttpCheckSpec | None = None
    preflight: HttpCheckSpec | None = None
    self_expiring: bool = False


class HttpAdapter(Adapter):
    """Switch a fault on and off with two HTTP calls (feature-flag APIs, admin endpoints, scripted toggles).

    Parameters:

    - ``inject`` / ``revert`` (required): a request each, with ``method`` (default POST), ``url``,
      ``headers`` (dict), optional ``json`` body and ``expected_status`` (default [200, 201, 202, 204]).
      A 404 answer to ``revert`` counts as "already reverted".
    - ``status`` (optional): a request (default GET) whose answer says whether the fault is on: an expected
      status means active (when ``active_when_body_contains`` is set, only if the body contains that text);
      404 means off. Without it, status is unknown (or expired once a self-expiring toggle's TTL passed).
    - ``preflight`` (optional, default none): a request (default GET) made before any start. Without it the
      preflight only checks that every ``${VAR}`` resolves and says the revert endpoint was not contacted.
    - ``self_expiring`` (default false): set it when the toggle API takes a TTL, so the engine knows the
      backend heals the fault by itself after the run duration.
    - ``timeout_seconds`` (5), ``retries`` (3), ``backoff_seconds`` (0.5): each request is retried on
      connection errors, timeouts, 429 and 5xx with exponential backoff, so toggles should be idempotent.

    Strings may hold ``${VAR}`` (resolved from the environment at call time) and the placeholders
    ``{{run_id}}`` and ``{{duration_seconds}}`` (a value that is exactly ``"{{duration_seconds}}"`` becomes
    an integer, so it can be passed as a TTL). In preflight they are ``preflight`` and ``0``. The handle
    records each request's method and URL *template*, never a resolved secret.
    """

    name = "http"
    Params = HttpParams
    self_expiring = False

    @reports_failures
    def preflight(self, params: AdapterParams) -> Preflight:
        p = params_as(HttpParams, params)
        missing = sorted(name for name in env_references(p.model_dump(by_alias=True)) if name not in os.environ)
        if missing:
            return Preflight(ok=False, detail=f"environment variables not set: {', '.join(missing)}")
        if p.preflight is None:
            return Preflight(
                ok=True,
                detail="every ${VAR} resolves; no preflight request configured, so revert reachability was not checked",
            )
        response = _call(p, p.preflight, run_id="preflight", seconds=0)
        return Preflight(ok=True, detail=f"{_label(p.preflight, 'preflight', 0)} answered {response.status_code}")

    def prepare(self, params: AdapterParams, *, run_id: str, duration: timedelta) -> FaultHandle:
        p = params_as(HttpParams, params)
        seconds = whole_seconds(duration)
        data = {"duration_seconds": seconds, "self_expiring": p.self_expiring, "requests": []}
        return FaultHandle(adapter=self.name, run_id=run_id, data=data)

    def inject(self, params: AdapterParams, handle: FaultHandle, *, duration: timedelta) -> FaultHandle:
        p = params_as(HttpParams, params)
        seconds = whole_seconds(duration)
        response = _call(p, p.inject, run_id=handle.run_id, seconds=seconds)
        record = _record("inject", p.inject, handle.run_id, seconds, response.status_code)
        data = {**handle.data, "duration_seconds": seconds, "requests": [*handle.data.get("requests", []), record]}
        return replace(handle, data=data, expires_at=expiry(duration) if p.self_expiring else None)

    def revert(self, params: AdapterParams, handle: FaultHandle) -> None:
        p = params_as(HttpParams, params)
        _call(p, p.revert, run_id=handle.run_id, seconds=_seconds(handle), accept=(404,))

    def status(self, params: AdapterParams, handle: FaultHandle) -> FaultStatus:
        p = params_as(HttpParams, params)
        if p.status is None:
            if has_expired(handle.expires_at):
                return FaultStatus(FaultState.EXPIRED, "the toggle's TTL has passed (no status request set)")
            return FaultStatus(FaultState.UNKNOWN, "no status request configured")
        response = _call(p, p.status, run_id=handle.run_id, seconds=_seconds(handle), accept=(404,))
        label = _label(p.status, handle.run_id, _seconds(handle))
        wanted = p.status.active_when_body_contains
        if response.status_code != 404 and (wanted is None or wanted in response.text):
            return FaultStatus(FaultState.ACTIVE, f"{label} answered {response.status_code}")
        state = FaultState.EXPIRED if has_expired(handle.expires_at) else FaultState.REVERTED
        return FaultStatus(state, f"{label} answered {response.status_code}: fault is off")


def _call(
    p: HttpParams, spec: HttpRequestSpec, *, run_id: str, seconds: int, accept: tuple[int, ...] = ()
) -> httpx.Response:
    request = Request(
        method=spec.method,
        url=str(_fill(resolve_env(spec.url), run_id, seconds)),
        label=_label(spec, run_id, seconds),
        headers=_fill(resolve_env(spec.headers), run_id, seconds),
        json=_fill(resolve_env(spec.body), run_id, seconds),
    )
    return send(request, p, ok=spec.expected_status, accept=accept)


def _fill(value: Any, run_id: str, seconds: int) -> Any:
    """Replace the ``{{...}}`` placeholders, after ``${VAR}`` resolution so an env value cannot inject one."""
    if isinstance(value, str):
        if value == DURATION:
            return seconds
        return value.replace(RUN_ID, run_id).replace(DURATION, str(seconds))
    if isinstance(value, dict):
        return {key: _fill(item, run_id, seconds) for key, item in value.items()}
    if isinstance(value, list):
        return [_fill(item, run_id, seconds) for item in value]
    return value


def _label(spec: HttpRequestSpec, run_id: str, seconds: int) -> str:
    return f"{spec.method} {_fill(spec.url, run_id, seconds)}"


def _record(step: str, spec: HttpRequestSpec, run_id: str, seconds: int, status: int) -> dict[str, Any]:
    return {"step": step, "method": spec.method, "url": _fill(spec.url, run_id, seconds), "status": status}


def _seconds(handle: FaultHandle) -> int:
    return int(handle.data.get("duration_seconds", 0))
