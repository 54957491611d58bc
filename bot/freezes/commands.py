"""``/chaos freeze …`` as typed requests. Pure: no database, no Slack; a usage error is an ``InvalidInput``.

    /chaos freeze                                          → OpenFreezeForm
    /chaos freeze list                                     → ListFreezes
    /chaos freeze remove FRZ-3                             → RemoveFreeze(3)
    /chaos freeze add <start> <end> [--env NAME] <reason…> → AddFreeze(FreezeRequest)

Times are ``YYYY-MM-DDTHH:MM`` in the team's zone. ``--env NAME`` (or ``--env=NAME``) may come anywhere
after the two times and may be repeated; without it the freeze holds for every environment.
"""

from __future__ import annotations

from dataclasses import dataclass
from zoneinfo import ZoneInfo

from bot.errors import InvalidInput
from bot.freezes.service import FreezeRequest, parse_freeze_id, parse_local

USAGE = (
    "Usage: `/chaos freeze add <start> <end> [--env NAME] <reason…>` (times as YYYY-MM-DDTHH:MM, team time zone), "
    "`/chaos freeze list`, `/chaos freeze remove <id>`, or `/chaos freeze` for the form."
)


@dataclass(frozen=True)
class OpenFreezeForm:
    pass


@dataclass(frozen=True)
class ListFreezes:
    pass


@dataclass(frozen=True)
class RemoveFreeze:
    freeze_id: int


@dataclass(frozen=True)
class AddFreeze:
    request: FreezeRequest


FreezeCommand = OpenFreezeForm | ListFreezes | RemoveFreeze | AddFreeze


def usage(problem: str) -> InvalidInput:
    return InvalidInput(f"{problem} {USAGE}")


def parse_freeze_command(text: str, zone: ZoneInfo) -> FreezeCommand:
    """The words after ``/chaos freeze`` (a leading ``freeze`` is accepted too) as a typed request."""
    words = text.split()
    if words and words[0].lower() == "freeze":
        words = words[1:]
    if not words:
        return OpenFreezeForm()
    verb, rest = words[0].lower(), words[1:]
    if verb == "list":
        if rest:
            raise usage("`freeze list` takes nothing after it.")
        return ListFreezes()
    if verb == "remove":
        if len(rest) != 1:
            raise usage("`freeze remove` takes one freeze id, e.g. FRZ-3.")
        return RemoveFreeze(parse_freeze_id(rest[0]))
    if verb == "add":
        return AddFreeze(_add(rest, zone))
    raise usage(f"I do not know `freeze {words[0]}`.")


def _add(words: list[str], zone: ZoneInfo) -> FreezeRequest:
    if len(words) < 2:
        raise usage("`freeze add` needs a start, an end and a reason.")
    starts_at = parse_local(words[0], zone, field="starts_at")
    ends_at = parse_local(words[1], zone, field="ends_at")
    environments: list[str] = []
    reason: list[str] = []
    rest = iter(words[2:])
    for word in rest:
        if word.lower() == "--env":
            name = next(rest, None)
            if name is None or name.startswith("--"):
                raise usage("`--env` needs an environment name after it.")
            environments.append(name.lower())
        elif word.lower().startswith("--env="):
            environments.append(word.split("=", 1)[1].lower())
        elif word.startswith("--"):
            raise usage(f"I do not know the option `{word}`.")
        else:
            reason.append(word)
    if not reason:
        raise usage("A freeze needs a reason people will read, e.g. the client delivery.")
    return FreezeRequest(
        starts_at=starts_at, ends_at=ends_at, reason=" ".join(reason), environments=tuple(environments)
    )
