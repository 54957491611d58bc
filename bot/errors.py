"""Errors a person can cause. Each carries a message written for that person.

The message is ``Words``: people and groups stay values, and each interface renders them (Slack as
mentions, the console as names). ``message`` is the same as plain text, for logs and the CLI.
Anything that is not a ``DomainError`` is a bug or an outage and is answered with an apology and an id.
"""

from __future__ import annotations

from bot.words import Words


class DomainError(Exception):
    """Base of every error whose message is meant for the person who caused it."""

    def __init__(self, message: str | Words) -> None:
        self.words = message if isinstance(message, Words) else Words.of(message)
        self.message = str(self.words)
        super().__init__(self.message)


class NotFound(DomainError):
    """A run, experiment or environment that does not exist."""


class InvalidInput(DomainError):
    """Input that cannot be accepted; ``field`` names the form field when there is one."""

    def __init__(self, message: str | Words, *, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


class IllegalTransition(DomainError):
    """The run is not in a state that allows this action (including a concurrent change)."""


class NotPermitted(DomainError):
    """The person may not do this (wrong role, own run, ...)."""


class RolesUnavailable(DomainError):
    """Who holds which role could not be read just now (the chat platform did not answer)."""


class KillSwitchEngaged(DomainError):
    """The global kill switch is engaged: nothing may start until someone resumes."""


class ConfigurationError(Exception):
    """Bad configuration found at start; the message names the setting and what is expected."""
