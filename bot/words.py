"""What the core says to people, with people and groups kept as values rather than chat markup.

The core builds ``Words`` (text, ``Person`` and ``Group`` parts); each interface renders them its own way:
Slack as mentions with typed text escaped, the console as names. The core never writes ``<@U…>``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

SYSTEM_ACTOR = "chaosbot"  # the bot itself: named, never @-mentioned


@dataclass(frozen=True)
class Person:
    user_id: str


@dataclass(frozen=True)
class Group:
    group_id: str


Part = str | Person | Group


@dataclass(frozen=True)
class Words:
    parts: tuple[Part, ...] = ()

    @classmethod
    def of(cls, *pieces: Part | Words) -> Words:
        """Concatenate text, people, groups and other ``Words`` into one."""
        parts: list[Part] = []
        for piece in pieces:
            parts.extend(piece.parts if isinstance(piece, Words) else (piece,))
        return cls(tuple(part for part in parts if part != ""))

    def __add__(self, other: Part | Words) -> Words:
        return Words.of(self, other)

    def __radd__(self, other: Part) -> Words:
        return Words.of(other, self)

    def __bool__(self) -> bool:
        return bool(self.parts)

    def people(self) -> list[Person]:
        return [part for part in self.parts if isinstance(part, Person)]

    def render(
        self,
        *,
        person: Callable[[Person], str],
        group: Callable[[Group], str],
        text: Callable[[str], str] = str,
    ) -> str:
        """Each part through its own renderer, joined."""
        out = []
        for part in self.parts:
            if isinstance(part, Person):
                out.append(person(part))
            elif isinstance(part, Group):
                out.append(group(part))
            else:
                out.append(text(part))
        return "".join(out)

    def __str__(self) -> str:
        """Plain text for logs and the audit trail: people as ``@U123``."""
        return self.render(person=lambda p: f"@{p.user_id}", group=lambda g: f"@{g.group_id}")


def who(user_id: str) -> Part:
    """How an actor appears in what the core says: a ``Person``, or the bot's own name."""
    return user_id if user_id == SYSTEM_ACTOR else Person(user_id)


def listing(items: Iterable[Part | Words], separator: str = ", ") -> Words:
    """Items joined by a separator, people kept as values."""
    pieces: list[Part | Words] = []
    for index, item in enumerate(items):
        if index:
            pieces.append(separator)
        pieces.append(item)
    return Words.of(*pieces)
