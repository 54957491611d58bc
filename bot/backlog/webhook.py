"""A webhook: POST a JSON body (the policy's template filled with the ticket); the link comes from the answer."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from bot.backlog.base import Backlog, Filed, Ticket
from bot.backlog.models import TICKET_FIELDS, WebhookBacklog

_PLACEHOLDER = re.compile(r"\{(" + "|".join(TICKET_FIELDS) + r")\}")
_LINK_FIELDS = ("url", "html_url", "link")


def fill(template: Any, values: Mapping[str, str]) -> Any:
    """Replace the known ``{field}`` placeholders in every string of a JSON template; other braces stay."""
    if isinstance(template, str):
        return _PLACEHOLDER.sub(lambda match: values[match.group(1)], template)
    if isinstance(template, dict):
        return {key: fill(value, values) for key, value in template.items()}
    if isinstance(template, list):
        return [fill(value, values) for value in template]
    return template


def dig(document: Any, dotted: str) -> Any:
    for part in dotted.split("."):
        if not isinstance(document, dict):
            return None
        document = document.get(part)
    return document


class Webhook(Backlog[WebhookBacklog]):
    kind = "webhook"

    def file(self, ticket: Ticket) -> Filed:
        values = ticket.fields()
        body = fill(self.config.body, values) if self.config.body is not None else values
        headers = {name: self.secret(value) for name, value in self.config.headers.items()}
        answer = self.post(
            self.secret(self.config.url),
            label=f"webhook POST {self.config.url}",  # the template, not the resolved URL
            json=body,
            headers=headers,
            timeout=self.config.timeout_seconds,
        )
        fields = (self.config.link_field,) if self.config.link_field else _LINK_FIELDS
        link = next((dig(answer, name) for name in fields if isinstance(dig(answer, name), str)), None)
        return Filed(url=link)
