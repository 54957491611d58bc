"""The policy's ``backlog:`` section, validated when the policy loads.

Secrets are ``${VAR}`` references resolved at the moment of each call (never stored, logged or shown)::

    backlog: {kind: github, repo: org/name, token: ${GITHUB_TOKEN}}
    backlog: {kind: jira, site: https://acme.atlassian.net, project: REL, email: ${JIRA_EMAIL},
              token: ${JIRA_API_TOKEN}, issue_type: Task}
    backlog: {kind: webhook, url: https://hooks.example/backlog, body: {title: "{title}", due: "{due}"}}
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

_ENV_REF = re.compile(r"^\$\{[A-Za-z_][A-Za-z0-9_]*\}$")
_REPO = re.compile(r"^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+$")
_PROJECT = re.compile(r"^[A-Z][A-Z0-9_]{1,9}$")
#: Placeholders a webhook body template may use.
TICKET_FIELDS = ("title", "body", "what", "owner", "due", "run", "experiment", "item", "link")


def _secret(value: str) -> str:
    if not _ENV_REF.match(value.strip()):
        raise ValueError(
            "must be an environment reference such as ${GITHUB_TOKEN}, so the secret stays out of the file"
        )
    return value.strip()


def _http_url(value: str) -> str:
    if not value.startswith(("https://", "http://")):
        raise ValueError("must be an http(s) URL")
    return value.rstrip("/")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class GitHubBacklog(_Strict):
    kind: Literal["github"]
    repo: str = Field(description="owner/name")
    token: str
    api_url: str = "https://api.github.com"  # GitHub Enterprise Server: https://HOST/api/v3
    labels: list[str] = Field(default_factory=list)
    timeout_seconds: float = Field(default=10.0, gt=0, le=60)

    @field_validator("repo")
    @classmethod
    def _repo(cls, value: str) -> str:
        if not _REPO.match(value):
            raise ValueError("expected owner/name, such as acme/reliability")
        return value

    _token = field_validator("token")(classmethod(lambda cls, v: _secret(v)))
    _api = field_validator("api_url")(classmethod(lambda cls, v: _http_url(v)))


class JiraBacklog(_Strict):
    kind: Literal["jira"]
    site: str = Field(description="https://your-domain.atlassian.net")
    project: str = Field(description="the project key, such as REL")
    email: str = Field(description="the account the API token belongs to (may be a ${VAR})")
    token: str
    issue_type: str = "Task"
    labels: list[str] = Field(default_factory=list)
    timeout_seconds: float = Field(default=10.0, gt=0, le=60)

    @field_validator("project")
    @classmethod
    def _project(cls, value: str) -> str:
        if not _PROJECT.match(value):
            raise ValueError("expected a Jira project key such as REL (capitals and digits)")
        return value

    _token = field_validator("token")(classmethod(lambda cls, v: _secret(v)))
    _site = field_validator("site")(classmethod(lambda cls, v: _http_url(v)))


class WebhookBacklog(_Strict):
    kind: Literal["webhook"]
    url: str
    headers: dict[str, str] = Field(default_factory=dict)
    #: A JSON template; strings may hold {title}, {body}, {what}, {owner}, {due}, {run}, {experiment}, {item}, {link}.
    body: dict[str, Any] | None = None
    #: Where the created item's link is in the response (dotted path); by default url, html_url or link.
    link_field: str | None = None
    timeout_seconds: float = Field(default=10.0, gt=0, le=60)

    _url = field_validator("url")(classmethod(lambda cls, v: _http_url(v)))


BacklogConfig = Annotated[GitHubBacklog | JiraBacklog | WebhookBacklog, Field(discriminator="kind")]
