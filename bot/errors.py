"""Errors a person can cause. Each carries a message written for that person.

Callers (Slack, console, CLI) show ``message`` as is; anything that is not a
``DomainError`` is a bug or an outage and is answered with an apology and an id.
"""

from __future__ import annotations


class DomainError(Exception):
    """Base of every error whose message is meant for the person who caused it."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class NotFound(DomainError):
    """A run, experiment or environment that does not exist."""


class InvalidInput(DomainError):
    """Input that cannot be accepted; ``field`` names the form field when there is one."""

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


class IllegalTransition(DomainError):
    """The run is not in a state that allows this action (including a concurrent change)."""


class NotPermitted(DomainError):
    """The person may not do this (wrong role, own run, ...)."""


class KillSwitchEngaged(DomainError):
    """The global kill switch is engaged: nothing may start until someone resumes."""


class ConfigurationError(Exception):
    """Bad configuration found at start; the message names the setting and what is expected."""
