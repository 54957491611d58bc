"""The small interface every backlog implements, and the ticket it files.

The flow stores an action item first, then calls ``file`` outside any transaction. ``file`` makes one
attempt: it returns where the item now lives, or raises ``BacklogError`` (``retryable`` when the backlog was
down or busy, so ``ActionItems.file_pending`` tries again later with backoff). ``${VAR}`` references in the
configuration are resolved at the moment of the call; messages name the request by its unresolved form, so a
secret never reaches a log, the database or a person.
"""

from __future__ import annotations

import os
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from typing import Any, ClassVar, Generic, TypeVar

import httpx

from adapters.base import MissingSecretError, resolve_env

_EXCERPT = 200


Config = TypeVar("Config")


class BacklogError(Exception):
    """Filing failed; ``message`` is safe to store and show (no secret)."""

    def __init__(self, message: str, *, retryable: bool) -> None:
        super().__init__(message)
        self.message = message
        self.retryable = retryable


@dataclass(frozen=True)
class Ticket:
    """What is filed for one action item."""

    item: str  # AI-12
    run: str  # RUN-42
    experiment: str
    what: str
    owner: str  # as the team knows them (a display name, or the user id)
    due_on: date
    link: str | None = None  # the run's thread, when the interface knows it

    @property
    def title(self) -> str:
        return f"[{self.run}] {self.what}"

    @property
    def body(self) -> str:
        lines = [
            f"Action item {self.item} from chaos experiment {self.experiment}, {self.run}.",
            "",
            f"- What: {self.what}",
            f"- Owner: {self.owner}",
            f"- Due: {self.due_on.isoformat()}",
        ]
        if self.link:
            lines.append(f"- Run: {self.link}")
        lines += ["", "Filed by chaosbot."]
        return "\n".join(lines)

    def fields(self) -> dict[str, str]:
        return {
            "title": self.title,
            "body": self.body,
            "what": self.what,
            "owner": self.owner,
            "due": self.due_on.isoformat(),
            "run": self.run,
            "experiment": self.experiment,
            "item": self.item,
            "link": self.link or "",
        }


@dataclass(frozen=True)
class Filed:
    """Where the item now lives in the backlog."""

    url: str | None
    key: str | None = None


class Backlog(ABC, Generic[Config]):
    """A team backlog. Subclasses set ``kind`` and implement ``file``; ``config`` is their validated policy entry."""

    kind: ClassVar[str]

    def __init__(
        self,
        config: Config,
        *,
        environ: Mapping[str, str] | None = None,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.config = config
        self._environ = environ
        self._transport = transport

    @abstractmethod
    def file(self, ticket: Ticket) -> Filed:
        """Create the item in the backlog (one attempt); ``BacklogError`` when it could not."""

    def secret(self, value: str) -> str:
        try:
            return str(resolve_env(value, os.environ if self._environ is None else self._environ))
        except MissingSecretError as exc:
            raise BacklogError(f"{self.kind} backlog: {exc.message}", retryable=True) from None

    def post(
        self, url: str, *, label: str, json: Any, headers: Mapping[str, str], timeout: float, auth: Any = None
    ) -> Any:
        """POST once; the decoded JSON answer of a 2xx (None when not JSON), or ``BacklogError``."""
        try:
            with httpx.Client(timeout=timeout, transport=self._transport) as client:
                response = client.post(url, json=json, headers=dict(headers), auth=auth)
        except httpx.HTTPError as exc:
            said = str(exc).replace(url, "(url)")  # the resolved URL may hold a secret
            raise BacklogError(f"{label}: {type(exc).__name__} ({said})", retryable=True) from None
        if response.is_success:
            try:
                return response.json()
            except ValueError:
                return None
        excerpt = response.text[:_EXCERPT].replace("\n", " ")
        retryable = response.status_code in (408, 409, 425, 429) or response.status_code >= 500
        hint = "" if retryable else " (check the backlog settings in the policy file)"
        raise BacklogError(f"{label}: HTTP {response.status_code} {excerpt}{hint}", retryable=retryable)
