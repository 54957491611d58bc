"""Why a start was refused or failed, in words for the person who asked (all are ``DomainError``)."""

from __future__ import annotations

from bot.errors import DomainError


class PreflightFailed(DomainError):
    """The adapter's preflight did not pass; nothing was injected and the run stays approved."""


class SteadyStateNotMet(DomainError):
    """A stop condition was already breached before the inject; nothing was injected."""


class StartNotAnnounced(DomainError):
    """The start's announcement did not reach the channel in time (Slack unreachable): nothing was injected
    and the run stays approved. Nobody could have pressed Abort, so the fault did not start."""


class InjectFailed(DomainError):
    """The inject call failed; whatever may have been applied was reverted and the run is marked failed."""


class AbortImpossible(DomainError):
    """Neither the database nor any mirror holds the run's fault handles (follow the manual rollback steps)."""
