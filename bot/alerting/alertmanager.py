"""A small client for Alertmanager's API v2: silences (create, expire) and the alerts that are firing.

- ``POST /api/v2/silences`` ``{matchers, startsAt, endsAt, createdBy, comment}`` → ``{"silenceID": …}``
- ``DELETE /api/v2/silence/{id}``: expire it now (404: already gone)
- ``GET /api/v2/alerts?active=true&silenced=false&inhibited=false&filter=name="value"``: what pages now
- ``GET /api/v2/status``: is it there

The base URL may hold ``${VAR}`` (resolved at each call); ``ALERTMANAGER_TOKEN``, when set, is sent as a bearer
token. Errors name the request by its unresolved form, so a secret never reaches a log or a message.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx

from adapters.base import MissingSecretError, resolve_env

TIMEOUT = httpx.Timeout(5.0, connect=2.0)
CREATED_BY = "chaosbot"
TOKEN_VARIABLE = "ALERTMANAGER_TOKEN"


class AlertmanagerError(Exception):
    """A call failed; the message is safe to store and show (no secret, no resolved URL)."""


@dataclass(frozen=True)
class Alert:
    name: str
    labels: dict[str, str]
    starts_at: str


class Alertmanager:
    """One Alertmanager (or a cluster behind one URL). Thread-safe; ``close()`` releases the connection pool."""

    def __init__(self, url: str, *, environ: Mapping[str, str] | None = None, http: httpx.Client | None = None):
        self.url_template = url.rstrip("/")
        self.environ = environ
        self._http = http or httpx.Client(timeout=TIMEOUT, follow_redirects=False)
        self._owns_http = http is None

    def create_silence(self, matchers: Mapping[str, str], *, ends_at: datetime, comment: str) -> str:
        body = {
            "matchers": [{"name": k, "value": v, "isRegex": False, "isEqual": True} for k, v in matchers.items()],
            "startsAt": _iso(datetime.now(UTC)),
            "endsAt": _iso(ends_at),
            "createdBy": CREATED_BY,
            "comment": comment,
        }
        answer = self._call("POST", "/api/v2/silences", json=body)
        silence_id = (
            answer.json().get("silenceID")
            if answer.headers.get("content-type", "").startswith("application/json")
            else None
        )
        if not isinstance(silence_id, str) or not silence_id:
            raise AlertmanagerError("POST /api/v2/silences answered without a silenceID")
        return silence_id

    def expire_silence(self, silence_id: str) -> None:
        """Expire a silence now; one that is already expired or gone counts as expired."""
        self._call("DELETE", f"/api/v2/silence/{silence_id}", ok=(200, 404))

    def firing(self, matchers: Mapping[str, str]) -> list[Alert]:
        """Active alerts matching every matcher that no silence and no inhibition hides: what would page."""
        params: list[tuple[str, str | int | float | bool | None]] = [
            ("active", "true"),
            ("silenced", "false"),
            ("inhibited", "false"),
            ("unprocessed", "false"),
        ]
        params += [("filter", f"{name}={json.dumps(value)}") for name, value in matchers.items()]
        answer = self._call("GET", "/api/v2/alerts", params=params)
        alerts = answer.json()
        if not isinstance(alerts, list):
            raise AlertmanagerError("GET /api/v2/alerts answered something other than a list")
        return [
            Alert(
                name=str(a.get("labels", {}).get("alertname", "?")),
                labels=a.get("labels", {}),
                starts_at=str(a.get("startsAt", "")),
            )
            for a in alerts
            if isinstance(a, dict)
        ]

    def check(self) -> None:
        """Raise ``AlertmanagerError`` unless Alertmanager answers its status."""
        self._call("GET", "/api/v2/status")

    def close(self) -> None:
        if self._owns_http:
            self._http.close()

    def _call(self, method: str, path: str, *, ok: tuple[int, ...] = (200,), **kwargs: Any) -> httpx.Response:
        what = f"{method} {path.split('?')[0]}"
        try:
            base = str(resolve_env(self.url_template, self.environ))
        except MissingSecretError as exc:
            raise AlertmanagerError(f"the environment variable {exc.variable} is not set") from None
        environ = os.environ if self.environ is None else self.environ
        token = environ.get(TOKEN_VARIABLE)
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        try:
            answer = self._http.request(method, base + path, headers=headers, **kwargs)
        except httpx.TimeoutException as exc:
            raise AlertmanagerError(f"{what} timed out ({type(exc).__name__})") from None
        except httpx.HTTPError as exc:
            raise AlertmanagerError(f"{what} could not connect ({type(exc).__name__})") from None
        if answer.status_code not in ok:
            raise AlertmanagerError(f"{what} answered HTTP {answer.status_code}: {answer.text[:200]}")
        return answer


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
