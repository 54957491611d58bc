"""How what the core says reaches people: the one place where people, groups and typed text become
Slack mrkdwn (mentions, with text escaped so typed ``<!channel>`` never pings) or console text (names)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Protocol

from bot.words import Group, Person, Words


class Renderer(Protocol):
    """Turns ``Words`` (or plain typed text) into the text a surface shows inside mrkdwn."""

    here: str  # how to call everyone in the channel to something urgent

    def __call__(self, words: Words | str) -> str: ...

    def channel(self, channel: str) -> str:
        """A link to a channel given by id (``C0123``) or name (``#reliability``)."""


def escape(text: str) -> str:
    """Slack's three control characters, so text a person typed is shown, never interpreted."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _words(value: Words | str) -> Words:
    return value if isinstance(value, Words) else Words.of(value)


class SlackRenderer:
    """People as ``<@U…>``, groups as ``<!subteam^S…>``, every text part escaped."""

    here = "<!here>"

    def __call__(self, words: Words | str) -> str:
        return _words(words).render(person=mention, group=group_mention, text=escape)

    def channel(self, channel: str) -> str:
        return channel if channel.startswith("#") else f"<#{channel}>"


def mention(person: Person) -> str:
    return f"<@{person.user_id}>"


def group_mention(group: Group) -> str:
    return f"<!subteam^{group.group_id}>"


@dataclass
class NameRenderer:
    """People and groups by name (``@oliver``), for a terminal: nothing to parse back."""

    names: Mapping[str, str] = field(default_factory=dict)
    text: Callable[[str], str] = str
    here: str = "@here"

    def __call__(self, words: Words | str) -> str:
        return _words(words).render(
            person=lambda p: f"@{self.names.get(p.user_id, p.user_id)}",
            group=lambda g: f"@{self.names.get(g.group_id, g.group_id)}",
            text=self.text,
        )

    def channel(self, channel: str) -> str:
        return channel if channel.startswith("#") else f"#{channel}"


SLACK = SlackRenderer()
