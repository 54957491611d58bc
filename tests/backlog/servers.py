"""Local servers implementing the documented create-issue calls of GitHub and Jira Cloud, and a webhook.

- GitHub REST: ``POST /repos/{owner}/{repo}/issues`` with ``Authorization: Bearer <token>``,
  ``Accept: application/vnd.github+json`` and a JSON body whose ``title`` is required; answers
  ``201 Created`` with the issue (``number``, ``html_url``...), ``401`` for a bad token, ``404`` for an
  unknown repository, ``422`` when the body is invalid.
- Jira Cloud REST v3: ``POST /rest/api/3/issue`` with basic auth (account email and API token) and
  ``{"fields": {project, summary, issuetype, description (an ADF document)}}``; answers ``201`` with
  ``{"id", "key", "self"}``, ``401`` for bad credentials, ``400`` with ``errors`` per field otherwise.
"""

from __future__ import annotations

import base64
from typing import Any

from tests.adapters.servers import Call, FakeBackend, Reply, not_found

GITHUB_TOKEN = "ghp_test_token_0123456789"
JIRA_EMAIL = "reliability@acme.example"
JIRA_TOKEN = "jira-test-token-abcdef"


class FakeGitHub(FakeBackend):
    def __init__(self, repo: str = "acme/reliability") -> None:
        super().__init__()
        self.repo = repo
        self.issues: list[dict[str, Any]] = []

    def route(self, call: Call) -> Reply:
        if call.method != "POST" or call.path != f"/repos/{self.repo}/issues":
            return not_found()
        if call.headers.get("authorization") != f"Bearer {GITHUB_TOKEN}":
            return Reply(401, {"message": "Bad credentials", "documentation_url": "https://docs.github.com/rest"})
        if call.headers.get("accept") != "application/vnd.github+json":
            return Reply(415, {"message": "Unsupported 'Accept' header"})
        body = call.body
        if not isinstance(body, dict) or not isinstance(body.get("title"), str) or not body["title"]:
            return Reply(422, {"message": "Validation Failed", "errors": [{"field": "title", "code": "missing"}]})
        unknown = set(body) - {"title", "body", "labels", "assignees", "milestone"}
        if unknown:
            return Reply(422, {"message": f"Validation Failed: {sorted(unknown)}"})
        number = len(self.issues) + 1
        issue = {
            "id": 1000 + number,
            "number": number,
            "title": body["title"],
            "body": body.get("body"),
            "labels": [{"name": name} for name in body.get("labels", [])],
            "state": "open",
            "url": f"https://api.github.com/repos/{self.repo}/issues/{number}",
            "html_url": f"https://github.com/{self.repo}/issues/{number}",
        }
        self.issues.append(issue)
        return Reply(201, issue, {"Location": issue["url"]})


def _adf_errors(document: Any) -> str | None:
    if not isinstance(document, dict) or document.get("type") != "doc" or document.get("version") != 1:
        return "description must be an Atlassian Document Format document (type doc, version 1)"
    for block in document.get("content", []):
        if block.get("type") != "paragraph":
            return f"unexpected block {block.get('type')!r}"
        for inline in block.get("content", []):
            if inline.get("type") == "text" and not inline.get("text"):
                return "a text node may not be empty"
            if inline.get("type") not in ("text", "hardBreak"):
                return f"unexpected inline node {inline.get('type')!r}"
    return None


class FakeJira(FakeBackend):
    def __init__(self, project: str = "REL") -> None:
        super().__init__()
        self.project = project
        self.issues: list[dict[str, Any]] = []
        self.site = ""  # set by the test once the server runs

    def route(self, call: Call) -> Reply:
        if call.method != "POST" or call.path != "/rest/api/3/issue":
            return not_found()
        expected = base64.b64encode(f"{JIRA_EMAIL}:{JIRA_TOKEN}".encode()).decode()
        if call.headers.get("authorization") != f"Basic {expected}":
            return Reply(401, "Client must be authenticated to access this resource.")
        fields = call.body.get("fields") if isinstance(call.body, dict) else None
        if not isinstance(fields, dict):
            return Reply(400, {"errorMessages": ["fields are required"], "errors": {}})
        errors: dict[str, str] = {}
        if (fields.get("project") or {}).get("key") != self.project:
            errors["project"] = "valid project is required"
        if not isinstance(fields.get("summary"), str) or not fields["summary"] or len(fields["summary"]) > 255:
            errors["summary"] = "You must specify a summary of the issue."
        if (fields.get("issuetype") or {}).get("name") not in ("Task", "Bug", "Story"):
            errors["issuetype"] = "valid issue type is required"
        if "description" in fields and (problem := _adf_errors(fields["description"])):
            errors["description"] = problem
        if errors:
            return Reply(400, {"errorMessages": [], "errors": errors})
        number = len(self.issues) + 1
        issue = {"id": str(10000 + number), "key": f"{self.project}-{number}", "fields": fields}
        self.issues.append(issue)
        return Reply(
            201, {"id": issue["id"], "key": issue["key"], "self": f"{self.site}/rest/api/3/issue/{issue['id']}"}
        )


class FakeWebhook(FakeBackend):
    """A team's own endpoint: checks a shared-secret header and answers where the item now lives."""

    secret = "hook-secret-42"

    def __init__(self) -> None:
        super().__init__()
        self.received: list[Any] = []

    def route(self, call: Call) -> Reply:
        if call.method != "POST" or call.path != "/backlog":
            return not_found()
        if call.headers.get("x-backlog-token") != self.secret:
            return Reply(403, {"error": "forbidden"})
        if call.headers.get("content-type") != "application/json":
            return Reply(415, {"error": "JSON only"})
        self.received.append(call.body)
        return Reply(
            200, {"ticket": {"id": len(self.received), "web": f"https://tracker.example/t/{len(self.received)}"}}
        )
