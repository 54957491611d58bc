"""GitHub: create an issue with the REST API (``POST /repos/{owner}/{repo}/issues``); the link is its html_url."""

from __future__ import annotations

from bot.backlog.base import Backlog, BacklogError, Filed, Ticket
from bot.backlog.models import GitHubBacklog

API_VERSION = "2022-11-28"


class GitHub(Backlog[GitHubBacklog]):
    kind = "github"

    def file(self, ticket: Ticket) -> Filed:
        path = f"/repos/{self.config.repo}/issues"
        body: dict[str, object] = {"title": ticket.title, "body": ticket.body}
        if self.config.labels:
            body["labels"] = list(self.config.labels)
        answer = self.post(
            self.config.api_url + path,
            label=f"GitHub POST {path}",
            json=body,
            headers={
                "Accept": "application/vnd.github+json",
                "Authorization": f"Bearer {self.secret(self.config.token)}",
                "X-GitHub-Api-Version": API_VERSION,
            },
            timeout=self.config.timeout_seconds,
        )
        if not isinstance(answer, dict) or not answer.get("html_url"):
            raise BacklogError(f"GitHub POST {path}: the answer has no html_url", retryable=False)
        number = answer.get("number")
        return Filed(url=str(answer["html_url"]), key=f"#{number}" if number is not None else None)
