"""Jira Cloud: create an issue with REST API v3 (``POST /rest/api/3/issue``, description in Atlassian Document
Format, basic auth with the account's email and an API token); the link is ``{site}/browse/{key}``."""

from __future__ import annotations

from typing import Any

from bot.backlog.base import Backlog, BacklogError, Filed, Ticket
from bot.backlog.models import JiraBacklog

PATH = "/rest/api/3/issue"


def adf(text: str) -> dict[str, Any]:
    """Plain text as an ADF document: one paragraph per blank-line separated block, line breaks kept."""
    content = []
    for block in text.split("\n\n"):
        inline: list[dict[str, Any]] = []
        for index, line in enumerate(block.split("\n")):
            if index:
                inline.append({"type": "hardBreak"})
            if line:
                inline.append({"type": "text", "text": line})
        content.append({"type": "paragraph", "content": inline})
    return {"type": "doc", "version": 1, "content": content}


class Jira(Backlog[JiraBacklog]):
    kind = "jira"

    def file(self, ticket: Ticket) -> Filed:
        fields: dict[str, Any] = {
            "project": {"key": self.config.project},
            "summary": ticket.title[:255],  # Jira refuses a longer summary
            "issuetype": {"name": self.config.issue_type},
            "description": adf(ticket.body),
        }
        if self.config.labels:
            fields["labels"] = list(self.config.labels)
        answer = self.post(
            self.config.site + PATH,
            label=f"Jira POST {PATH}",
            json={"fields": fields},
            headers={"Accept": "application/json"},
            auth=(self.secret(self.config.email), self.secret(self.config.token)),
            timeout=self.config.timeout_seconds,
        )
        if not isinstance(answer, dict) or not answer.get("key"):
            raise BacklogError(f"Jira POST {PATH}: the answer has no issue key", retryable=False)
        key = str(answer["key"])
        return Filed(url=f"{self.config.site}/browse/{key}", key=key)
