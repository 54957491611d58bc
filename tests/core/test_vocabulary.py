"""One grammar for durations and one shape for each kind of moment, whichever surface shows it."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from bot.console.forms import FormError, parse_moment
from bot.vocabulary import (
    format_clock,
    format_date,
    format_day,
    format_entered,
    format_local,
    format_seconds,
    format_time,
    parse_duration,
    parse_offset,
    zone_abbreviation,
)

SYDNEY = ZoneInfo("Australia/Sydney")
MOMENT = datetime(2026, 12, 2, 3, 5, 9, tzinfo=UTC)  # Wed 02 Dec 2026 14:05:09 AEDT


def test_every_moment_shape_is_local() -> None:
    assert format_local(MOMENT, SYDNEY) == "Wed 02 Dec 2026 14:05 AEDT"
    assert format_local(MOMENT, SYDNEY, year=False) == "Wed 02 Dec 14:05 AEDT"
    assert format_day(MOMENT, SYDNEY) == "Wed 02 Dec 2026"
    assert format_clock(MOMENT, SYDNEY) == "14:05:09"
    assert format_time(MOMENT, SYDNEY) == "14:05:09 AEDT"
    assert zone_abbreviation(MOMENT, SYDNEY) == "AEDT"
    assert format_entered(MOMENT, SYDNEY) == "2026-12-02 14:05 AEDT"
    assert format_date(date(2026, 12, 2)) == "02 Dec 2026"
    assert format_date(date(2026, 12, 2), weekday=True) == "Wed 02 Dec 2026"
    assert format_seconds(12.34) == "12.3 s"


@pytest.mark.parametrize(("text", "seconds"), [("90s", 90), ("5m", 300), ("2h", 7200), ("1d", 86400)])
def test_one_duration_grammar(text: str, seconds: int) -> None:
    assert parse_offset(text) == timedelta(seconds=seconds)
    if not text.endswith("d"):  # how long something lasts stays in seconds, minutes and hours
        assert parse_duration(text) == timedelta(seconds=seconds)
    else:
        with pytest.raises(ValueError):
            parse_duration(text)


def test_the_console_reads_a_time_from_now_with_the_same_grammar() -> None:
    for text, seconds in [("+30m", 1800), ("+2h", 7200), ("+1d", 86400), ("+45s", 45)]:
        assert parse_moment(text, SYDNEY, MOMENT) == int(MOMENT.timestamp()) + seconds
    with pytest.raises(FormError):
        parse_moment("+3w", SYDNEY, MOMENT)
