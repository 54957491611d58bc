"""What the scheduler's firings say to people, as ``Words`` (the interface renders them and adds buttons)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from zoneinfo import ZoneInfo

from bot.policy.models import Policy, Role
from bot.runs.models import Run
from bot.schedule.service import NOTICE
from bot.vocabulary import format_local
from bot.words import Words, listing, who


def _what(run: Run) -> str:
    title = run.experiment.get("title") if isinstance(run.experiment, dict) else None
    return f"{run.label} ({run.experiment_id}{f' · {title}' if title else ''}) in {run.environment}"


def notice(run: Run, *, zone: ZoneInfo) -> Words:
    """Before a planned start: what, where, whose, when, whether it starts by itself, how to stop it."""
    how = (
        "It starts by itself at that time, if every approval is in and no window or freeze refuses."
        if run.auto_start
        else "It does not start by itself: the owner or an approver starts it."
    )
    return Words.of(
        f"Coming up: {_what(run)}, owned by ",
        who(run.owner),
        f", is planned for {format_local(run.planned_start, zone)}. {how} "
        f"To stop it once it runs: `/chaos abort {run.label}`.",
    )


def not_approved(run: Run, *, missing: Sequence[Role], policy: Policy, zone: ZoneInfo) -> Words:
    """An automatic start of a run still waiting for approvals: who is missing, and until when it can start by hand."""
    roles = [Words.of(f"{role.label} (", listing(policy.holders(role).who(), " or "), ")") for role in missing]
    expires = run.planned_start + policy.plan_expiry
    return Words.of(
        f"{run.label} did not start by itself at {format_local(run.planned_start, zone)}: "
        "it still needs approval from ",
        listing(roles),
        f". Once approved it can be started by hand until {format_local(expires, zone)}, when the plan expires.",
    )


def missed(run: Run, kind: str, *, zone: ZoneInfo, due_at: datetime | None = None) -> Words:
    """A firing chaosbot could not carry out before the plan expired."""
    moment = format_local(due_at or run.planned_start, zone)
    if kind == NOTICE:
        return Words.of(f"The notice for {run.label} due {moment} could not be posted before the plan expired.")
    return Words.of(
        f"{run.label} did not start by itself at {moment}: chaosbot could not act on it before the plan "
        "expired. Plan it again to run it."
    )
