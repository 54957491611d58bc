"""The backlog a policy names, built from its validated configuration."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import httpx

from bot.backlog.base import Backlog
from bot.backlog.github import GitHub
from bot.backlog.jira import Jira
from bot.backlog.models import BacklogConfig, GitHubBacklog, JiraBacklog
from bot.backlog.webhook import Webhook


def backlog_for(
    config: BacklogConfig | None,
    *,
    environ: Mapping[str, str] | None = None,
    transport: httpx.BaseTransport | None = None,
) -> Backlog[Any] | None:
    """The team's backlog, or None when the policy configures none."""
    if config is None:
        return None
    if isinstance(config, GitHubBacklog):
        return GitHub(config, environ=environ, transport=transport)
    if isinstance(config, JiraBacklog):
        return Jira(config, environ=environ, transport=transport)
    return Webhook(config, environ=environ, transport=transport)
