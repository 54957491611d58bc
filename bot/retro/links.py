"""Observability links of a catalogue entry, filled with a run's window."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime

from adapters.base import MissingSecretError, resolve_env
from bot.catalogue.models import ObservabilityLink
from bot.retro.models import Link

_PLACEHOLDER = re.compile(r"\{(start|end)(:iso)?\}")


def fill(template: str, start: datetime, end: datetime) -> str:
    """``{start}``/``{end}`` as epoch milliseconds, ``{start:iso}``/``{end:iso}`` as ISO 8601 UTC.

    Only those exact placeholders are replaced: other braces (a LogQL selector, JSON) are left as written.
    """
    moments = {"start": start, "end": end}

    def substitute(match: re.Match[str]) -> str:
        moment = moments[match.group(1)].astimezone(UTC)
        if match.group(2):
            return moment.strftime("%Y-%m-%dT%H:%M:%SZ")
        return str(int(moment.timestamp() * 1000))

    return _PLACEHOLDER.sub(substitute, template)


def filled_links(
    links: Sequence[ObservabilityLink],
    start: datetime,
    end: datetime,
    environ: Mapping[str, str] | None = None,
) -> tuple[list[Link], list[str]]:
    """The links ready to show, and a gap sentence for each one whose ``${VAR}`` base URL is not set."""
    filled, gaps = [], []
    for link in links:
        try:
            url = str(resolve_env(link.url, environ))
        except MissingSecretError as exc:
            gaps.append(f"The link {link.title!r} is not shown: {exc.variable} is not set.")
            continue
        filled.append(Link(link.title, fill(url, start, end)))
    return filled, gaps
