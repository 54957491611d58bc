"""Public holidays of the team's country and subdivision, looked up in a short-lived child process.

The ``holidays`` package imports every country's calendar (about 300 modules, 11 MB) as soon as one country
is asked for. In the server that memory would stay resident for a lookup that matters once a month, so a
child process (``python -m bot.reports.public_holidays``) answers and exits, and its answers are cached here
for the life of the process.
"""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import date
from functools import cache

LOOKUP_TIMEOUT_SECONDS = 60


class HolidayLookupError(RuntimeError):
    """The child process could not answer (it crashed, timed out or printed something unexpected)."""


@cache
def subdivisions(country: str) -> tuple[str, ...] | None:
    """The subdivision codes the package knows for ``country``; ``None`` when it has no such country."""
    answer = _ask("subdivisions", country)
    return None if answer is None else tuple(_strings(answer))


@cache
def holidays_in(country: str, subdivision: str | None, year: int) -> frozenset[date]:
    """The public holidays of one calendar year."""
    answer = _ask("dates", country, subdivision or "", str(year))
    return frozenset(date.fromisoformat(day) for day in _strings(answer))


def _ask(*arguments: str) -> object:
    command = [sys.executable, "-m", __name__, *arguments]
    try:
        done = subprocess.run(command, capture_output=True, timeout=LOOKUP_TIMEOUT_SECONDS, check=False)
    except (OSError, subprocess.TimeoutExpired) as error:
        raise HolidayLookupError(f"looking up public holidays failed: {error}") from error
    if done.returncode != 0:
        detail = done.stderr.decode(errors="replace").strip().splitlines()[-1:] or ["no output"]
        raise HolidayLookupError(f"looking up public holidays failed: {detail[0]}")
    try:
        return json.loads(done.stdout)
    except ValueError as error:
        raise HolidayLookupError("looking up public holidays gave an unreadable answer") from error


def _strings(answer: object) -> list[str]:
    if not (isinstance(answer, list) and all(isinstance(item, str) for item in answer)):
        raise HolidayLookupError(f"looking up public holidays gave an unexpected answer: {answer!r:.80}")
    return answer


def _answer(arguments: list[str]) -> object:
    import holidays

    match arguments:
        case ["subdivisions", country]:
            known = holidays.list_supported_countries()
            return list(known[country]) if country in known else None
        case ["dates", country, subdivision, year]:
            calendar = holidays.country_holidays(country, subdiv=subdivision or None, years=int(year))
            return sorted(day.isoformat() for day in calendar)
    raise SystemExit(f"usage: python -m {__name__} subdivisions COUNTRY | dates COUNTRY SUBDIVISION YEAR")


if __name__ == "__main__":
    print(json.dumps(_answer(sys.argv[1:])))
