"""Shared plumbing for adapters that call a REST API: timeouts, bounded retries with backoff, clear errors.

Every call goes through ``send``. Transient failures (connection errors, timeouts, HTTP 429 and 5xx) are
retried ``retries`` times with exponential backoff; when they persist the ``AdapterError`` is marked
``retryable`` so the engine can try again later. Messages name the request by its *label*, built from the
un-resolved catalogue template, so a secret that sits in a resolved URL or header never reaches a person.
"""

from __future__ import annotations

import ssl
import time
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from functools import cache
from http.cookiejar import CookieJar, DefaultCookiePolicy
from typing import Any
from urllib.parse import quote

import httpx
from pydantic import Field

from adapters.base import AdapterError, AdapterParams

DEFAULT_OK: tuple[int, ...] = (200, 201, 202, 204)
MAX_DELAY_SECONDS = 10.0
# A server answering these has not acted on the request, so even a non-idempotent one may be re-sent.
_NOT_PROCESSED = (429, 503)
_BODY_EXCERPT = 200

Verify = bool | ssl.SSLContext


@cache
def _default_tls() -> ssl.SSLContext:
    """Built once, at the first inject: loading the CA bundle takes 30-90 ms (a revert must not pay it each
    call) and 1 MB (an idle bot need not hold it)."""
    return ssl.create_default_context()


class HttpTuning(AdapterParams):
    """Timeout and retry knobs shared by every HTTP adapter.

    - ``timeout_seconds`` (default 5): per-request timeout (connect, read, write).
    - ``retries`` (default 3): extra attempts after a transient failure.
    - ``backoff_seconds`` (default 0.5): first retry delay, doubled each attempt, capped at 10 s.
    """

    timeout_seconds: float = Field(default=5.0, gt=0, le=120)
    retries: int = Field(default=3, ge=0, le=10)
    backoff_seconds: float = Field(default=0.5, ge=0, le=30)


@dataclass(frozen=True)
class Request:
    """One HTTP call. ``url`` and ``headers`` are resolved (may hold secrets); ``label`` is safe to show."""

    method: str
    url: str
    label: str
    headers: Mapping[str, str] = field(default_factory=dict)
    json: Any = None
    query: Mapping[str, str] | None = None


def path_segment(value: str) -> str:
    return quote(value, safe="")


def join_url(base: str, *segments: str) -> str:
    return base.rstrip("/") + "/" + "/".join(segment.strip("/") for segment in segments)


def send(
    request: Request,
    tuning: HttpTuning,
    *,
    ok: Collection[int] = DEFAULT_OK,
    accept: Collection[int] = (),
    verify: Verify = True,
    idempotent: bool = True,
) -> httpx.Response:
    """Make the call, retrying transient failures; return the response when its status is in ``ok``/``accept``."""
    for attempt in range(tuning.retries + 1):
        outcome = _attempt(request, tuning.timeout_seconds, verify)
        if isinstance(outcome, httpx.Response) and (outcome.status_code in ok or outcome.status_code in accept):
            return outcome
        transient = _transient(outcome, idempotent)
        if attempt == tuning.retries or not transient:
            raise _failure(request, outcome, attempt + 1, transient=transient, idempotent=idempotent)
        time.sleep(_delay(tuning.backoff_seconds, attempt, outcome))
    raise AssertionError("unreachable: the last attempt returns or raises")


def json_body(response: httpx.Response, label: str) -> Any:
    try:
        return response.json()
    except ValueError as exc:
        raise AdapterError(f"{label}: HTTP {response.status_code} answer is not JSON") from exc


@cache
def _shared_client() -> httpx.Client:
    """One client for every call with the default TLS: making one took about 2 ms of CPU, which every revert
    paid (a hundred runs aborted at once: a fifth of a second of the interpreter). It keeps no connection
    alive between calls, so each call still opens its own, as before, and keeps no cookie a server sets."""
    limits = httpx.Limits(max_connections=None, max_keepalive_connections=0)
    no_cookies = CookieJar(policy=DefaultCookiePolicy(allowed_domains=[]))
    return httpx.Client(verify=_default_tls(), follow_redirects=False, limits=limits, cookies=no_cookies)


def _attempt(request: Request, timeout: float, verify: Verify) -> httpx.Response | httpx.TransportError:
    try:
        if verify is True:
            return _call(_shared_client(), request, timeout)
        with httpx.Client(timeout=timeout, verify=verify, follow_redirects=False) as client:
            return _call(client, request, timeout)
    except httpx.TransportError as exc:
        return exc


def _call(client: httpx.Client, request: Request, timeout: float) -> httpx.Response:
    return client.request(
        request.method,
        request.url,
        headers=dict(request.headers),
        json=request.json,
        params=dict(request.query) if request.query else None,
        timeout=timeout,
    )


def _transient(outcome: httpx.Response | httpx.TransportError, idempotent: bool) -> bool:
    if isinstance(outcome, httpx.TransportError):
        # A request that never connected was never seen by the server, so re-sending it is always safe.
        return idempotent or isinstance(outcome, httpx.ConnectError | httpx.ConnectTimeout)
    status = outcome.status_code
    if idempotent:
        return status == 429 or status >= 500
    return status in _NOT_PROCESSED


def _delay(backoff: float, attempt: int, outcome: httpx.Response | httpx.TransportError) -> float:
    if isinstance(outcome, httpx.Response):
        retry_after = outcome.headers.get("Retry-After", "")
        if retry_after.strip().isdigit():
            return min(float(retry_after), MAX_DELAY_SECONDS)
    return min(backoff * 2.0**attempt, MAX_DELAY_SECONDS)


def _failure(
    request: Request,
    outcome: httpx.Response | httpx.TransportError,
    attempts: int,
    *,
    transient: bool,
    idempotent: bool,
) -> AdapterError:
    tries = f"after {attempts} attempt{'s' if attempts > 1 else ''}"
    if isinstance(outcome, httpx.TransportError):
        reason = _scrub(str(outcome) or type(outcome).__name__, request)
        message = f"{request.label}: could not reach the server ({type(outcome).__name__}: {reason}) {tries}"
    else:
        message = f"{request.label}: HTTP {outcome.status_code} {outcome.reason_phrase} {tries}"
        excerpt = _scrub(outcome.text[:_BODY_EXCERPT].strip(), request)
        if excerpt:
            message += f": {excerpt}"
    if not transient and not idempotent and _maybe_applied(outcome):
        message += " (the request may have been applied; check the backend before retrying)"
    return AdapterError(message, retryable=transient)


def _maybe_applied(outcome: httpx.Response | httpx.TransportError) -> bool:
    if isinstance(outcome, httpx.TransportError):
        return True
    return outcome.status_code >= 500


def _scrub(text: str, request: Request) -> str:
    """Hide the resolved URL and header/query values (tokens, keys) in text a server or library echoed back."""
    text = text.replace(request.url, request.label)
    for value in [*request.headers.values(), *(request.query or {}).values()]:
        for part in {value, *value.split()}:
            if len(part) >= 6:
                text = text.replace(part, "***")
    return text
