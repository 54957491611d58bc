"""Reading real and hostile calendars: every readable event freezes, broken parts are skipped and counted.

The files under ``calendars/`` come from the test suites of two public calendar libraries, kept with their
licences (see ``calendars/README.md``); the small hand-written cases pin the rules RFC 5545 sets.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from bot.freezes.ical import FeedError, FeedLimits, decode, parse_feed

CALENDARS = Path(__file__).parent / "calendars"
SYDNEY = ZoneInfo("Australia/Sydney")
BERLIN = ZoneInfo("Europe/Berlin")


def real(name: str) -> str:
    return next(CALENDARS.glob(f"*/{name}.ics")).read_text(encoding="utf-8")


def calendar(*events: str) -> str:
    body = "".join(f"BEGIN:VEVENT\r\n{event.strip()}\r\nEND:VEVENT\r\n" for event in events)
    return f"BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//chaosbot tests//EN\r\n{body}END:VCALENDAR\r\n"


def utc(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)  # type: ignore[misc]  # year, month, day, ...


NOW = utc(2026, 12, 2, 3)


@pytest.mark.parametrize("path", sorted(CALENDARS.glob("*/*.ics")), ids=lambda path: path.name)
def test_every_real_calendar_is_read_or_refused_with_a_clear_reason(path: Path) -> None:
    text = path.read_text(encoding="utf-8", errors="replace")
    try:
        parsed = parse_feed(text, zone=SYDNEY, now=NOW, limits=FeedLimits(back=timedelta(days=365 * 60)))
    except FeedError as refused:
        assert "iCalendar" in str(refused)
        return
    assert all(event.starts_at < event.ends_at for event in parsed.events)
    assert len(parsed.events) == len(set(parsed.events))


def test_a_weekly_google_series_keeps_its_wall_clock_across_daylight_saving() -> None:
    parsed = parse_feed(real("daylight_saving_time"), zone=SYDNEY, now=utc(2019, 3, 1))
    assert len([event for event in parsed.events if event.reason.endswith("freie Termine")]) == 6  # COUNT=6
    school = [event for event in parsed.events if event.reason == "Montessori Schulklasse"]
    local_starts = {event.starts_at.astimezone(BERLIN).strftime("%H:%M") for event in school}
    assert local_starts == {"08:30"}  # Berlin moved its clocks on 31 March; the weekly series did not move
    offsets = {event.starts_at.astimezone(BERLIN).utcoffset() for event in school}
    assert offsets == {timedelta(hours=1), timedelta(hours=2)}
    assert not parsed.degraded


def test_a_moved_occurrence_freezes_its_new_time_not_its_old_one() -> None:
    parsed = parse_feed(real("issue_75_range_parameter"), zone=SYDNEY, now=utc(2024, 9, 10))
    starts = {event.starts_at for event in parsed.events}
    assert utc(2024, 9, 15, 17) in starts and utc(2024, 9, 15, 12) not in starts  # one occurrence moved
    assert utc(2024, 9, 17, 9) in starts and utc(2024, 9, 17, 12) not in starts  # RANGE=THISANDFUTURE


def test_three_events_at_one_time_are_three_freezes() -> None:
    parsed = parse_feed(real("issue_15_duplicated_events"), zone=SYDNEY, now=utc(2013, 8, 1))
    assert len(parsed.events) == 3


def test_two_calendars_in_one_file_are_both_read() -> None:
    text = calendar("UID:a\r\nSUMMARY:First\r\nDTSTART:20261210T090000Z\r\nDTEND:20261210T100000Z") + calendar(
        "UID:b\r\nSUMMARY:Second\r\nDTSTART:20261211T090000Z\r\nDTEND:20261211T100000Z"
    )
    parsed = parse_feed(text, zone=SYDNEY, now=NOW)
    assert [event.reason for event in parsed.events] == ["First", "Second"]


def test_one_event_without_dtstart_is_skipped_and_counted_the_rest_freeze() -> None:
    text = calendar(
        "UID:broken\r\nSUMMARY:No start\r\nDTEND:20261210T100000Z",
        "UID:fine\r\nSUMMARY:Go-live\r\nDTSTART:20261210T090000Z\r\nDTEND:20261210T170000Z",
    )
    parsed = parse_feed(text, zone=SYDNEY, now=NOW)
    assert [event.reason for event in parsed.events] == ["Go-live"]
    assert parsed.degraded and any("DTSTART" in note for note in parsed.notes)


def test_the_real_broken_dtstart_calendar_is_degraded_not_an_error() -> None:
    parsed = parse_feed(real("broken_dtstart"), zone=SYDNEY, now=NOW)
    assert parsed.events == [] and parsed.degraded


@pytest.mark.parametrize(
    "broken",
    ["EXDATE:", "RDATE:20261212Z"],  # an empty EXDATE; Google's RDATE with a bare date and a Z
)
def test_an_unreadable_exdate_or_rdate_is_ignored_and_the_event_still_freezes(broken: str) -> None:
    text = calendar(f"UID:a\r\nSUMMARY:Release\r\nDTSTART:20261210T090000Z\r\nDTEND:20261210T100000Z\r\n{broken}")
    parsed = parse_feed(text, zone=SYDNEY, now=NOW)
    assert [event.starts_at for event in parsed.events] == [utc(2026, 12, 10, 9)]
    assert parsed.degraded


def test_an_all_day_event_whose_end_equals_its_start_is_that_whole_day() -> None:
    text = calendar("UID:d\r\nSUMMARY:Board day\r\nDTSTART;VALUE=DATE:20261210\r\nDTEND;VALUE=DATE:20261210")
    [event] = parse_feed(text, zone=SYDNEY, now=NOW).events
    assert event.starts_at == datetime(2026, 12, 10, tzinfo=SYDNEY)
    assert event.ends_at == datetime(2026, 12, 11, tzinfo=SYDNEY)


def test_two_events_with_one_uid_and_no_recurrence_id_are_both_freezes() -> None:
    text = calendar(
        "UID:same\r\nSUMMARY:Release A\r\nDTSTART:20261210T090000Z\r\nDTEND:20261210T100000Z",
        "UID:same\r\nSUMMARY:Release B\r\nDTSTART:20261211T090000Z\r\nDTEND:20261211T100000Z",
    )
    assert [event.reason for event in parse_feed(text, zone=SYDNEY, now=NOW).events] == ["Release A", "Release B"]


@pytest.mark.parametrize("rule", ["", "\r\nRRULE:FREQ=DAILY;COUNT=3"], ids=["single", "series"])
def test_a_duration_in_hours_is_elapsed_time_and_a_day_is_a_calendar_day(rule: str) -> None:
    # Sydney leaves daylight saving at 03:00 on Sunday 5 April 2026: that day has 25 hours.
    text = calendar(
        f"UID:h\r\nSUMMARY:Hours\r\nDTSTART;TZID=Australia/Sydney:20260404T120000\r\nDURATION:PT24H{rule}",
        f"UID:d\r\nSUMMARY:Day\r\nDTSTART;TZID=Australia/Sydney:20260404T120000\r\nDURATION:P1D{rule}",
    )
    events = parse_feed(text, zone=SYDNEY, now=utc(2026, 4, 1)).events
    first = {event.reason: event for event in events if event.starts_at == utc(2026, 4, 4, 1)}
    assert first["Hours"].ends_at - first["Hours"].starts_at == timedelta(hours=24)
    assert first["Day"].ends_at - first["Day"].starts_at == timedelta(hours=25)
    assert first["Day"].ends_at.astimezone(SYDNEY).hour == 12


def test_a_rule_that_fires_every_second_stops_at_the_cap_quickly() -> None:
    text = calendar(
        "UID:s\r\nSUMMARY:Careless\r\nDTSTART:20261201T000000Z\r\nDURATION:PT1S\r\nRRULE:FREQ=SECONDLY",
        "UID:m\r\nSUMMARY:Also careless\r\nDTSTART:20261201T000000Z\r\nDURATION:PT1M\r\nRRULE:FREQ=MINUTELY",
        "UID:real\r\nSUMMARY:Go-live\r\nDTSTART:20261210T090000Z\r\nDTEND:20261210T170000Z",
    )
    began = time.monotonic()
    parsed = parse_feed(text, zone=SYDNEY, now=NOW)
    assert time.monotonic() - began < 20  # unbounded, this never finished
    assert len(parsed.events) == 5000
    assert parsed.degraded and any("cap" in note for note in parsed.notes)


def test_the_cap_keeps_a_real_freeze_that_follows_a_careless_series() -> None:
    text = calendar(
        "UID:m\r\nSUMMARY:Every minute\r\nDTSTART:20261215T000000Z\r\nDURATION:PT1M\r\nRRULE:FREQ=MINUTELY",
        "UID:real\r\nSUMMARY:Go-live\r\nDTSTART:20261210T090000Z\r\nDTEND:20261210T170000Z",
    )
    parsed = parse_feed(text, zone=SYDNEY, now=NOW, limits=FeedLimits(occurrences=100))
    assert parsed.events[0].reason == "Go-live"  # the earliest freezes are kept, whichever event comes first
    assert len(parsed.events) == 100


def test_an_unknown_tzid_is_reported_not_silently_team_time() -> None:
    text = calendar("UID:z\r\nSUMMARY:Mystery\r\nDTSTART;TZID=Mars/Olympus:20261210T090000\r\nDURATION:PT1H")
    parsed = parse_feed(text, zone=SYDNEY, now=NOW)
    assert len(parsed.events) == 1
    assert parsed.notes == ["1 x unknown time zone 'Mars/Olympus' read as team time"]
    google = text.replace("PRODID", "X-WR-TIMEZONE:Europe/Berlin\r\nPRODID")
    [event] = (parsed := parse_feed(google, zone=SYDNEY, now=NOW)).events
    assert event.starts_at.astimezone(BERLIN).hour == 9  # as the calendar's other floating times
    assert parsed.notes == ["1 x unknown time zone 'Mars/Olympus' read as the calendar's Europe/Berlin"]


def test_an_html_page_is_refused() -> None:
    with pytest.raises(FeedError, match="no BEGIN:VCALENDAR"):
        parse_feed("<!doctype html><html><body>Sign in</body></html>", zone=SYDNEY, now=NOW)


def test_the_charset_the_response_names_is_honoured() -> None:
    text = calendar("UID:l\r\nSUMMARY:Mise en production à Zürich\r\nDTSTART:20261210T090000Z\r\nDURATION:PT1H")
    body = text.encode("latin-1")
    [event] = parse_feed(decode(body, "iso-8859-1"), zone=SYDNEY, now=NOW).events
    assert event.reason == "Mise en production à Zürich"
    [guessed] = parse_feed(decode(body, None), zone=SYDNEY, now=NOW).events  # no charset: not UTF-8, so Latin-1
    assert "\ufffd" not in guessed.reason


def test_a_floating_single_event_reads_in_the_calendars_x_wr_timezone_like_a_series() -> None:
    events = (
        "UID:one\r\nSUMMARY:Single\r\nDTSTART:20261210T090000\r\nDTEND:20261210T100000",
        "UID:many\r\nSUMMARY:Series\r\nDTSTART:20261211T090000\r\nDTEND:20261211T100000\r\nRRULE:FREQ=DAILY;COUNT=1",
    )
    google = calendar(*events).replace("PRODID", "X-WR-TIMEZONE:Europe/Berlin\r\nPRODID")
    parsed = parse_feed(google, zone=SYDNEY, now=NOW)
    assert [event.starts_at.astimezone(BERLIN).hour for event in parsed.events] == [9, 9]

    unknown = calendar(*events).replace("PRODID", "X-WR-TIMEZONE:Not/AZone\r\nPRODID")
    parsed = parse_feed(unknown, zone=SYDNEY, now=NOW)  # a name no zone has: team time, and said
    assert [event.starts_at.astimezone(SYDNEY).hour for event in parsed.events] == [9, 9]
    assert parsed.notes == ["1 x unknown X-WR-TIMEZONE 'Not/AZone' ignored"]


EXPORTED = (  # what a Google or Outlook export carries in each event besides its times and title
    "DESCRIPTION:Release notes for the client\\, see the runbook at https://example.org/runbook and call\r\n"
    "  the on-call engineer if the smoke tests fail\\nSecond line of the notes\r\n"
    "ORGANIZER;CN=Rita:mailto:rita@example.org\r\n"
    "ATTENDEE;CUTYPE=INDIVIDUAL;ROLE=REQ-PARTICIPANT;PARTSTAT=ACCEPTED;CN=Oliver:mailto:oliver@example.org\r\n"
    "ATTENDEE;CUTYPE=INDIVIDUAL;ROLE=REQ-PARTICIPANT;PARTSTAT=NEEDS-ACTION;CN=Sam:mailto:sam@example.org\r\n"
    "DTSTAMP:20261201T000000Z\r\nCREATED:20261101T000000Z\r\nLAST-MODIFIED:20261101T000000Z\r\nLOCATION:\r\n"
    "TRANSP:OPAQUE\r\nBEGIN:VALARM\r\nACTION:DISPLAY\r\nDESCRIPTION:Reminder\r\nTRIGGER:-PT10M\r\nEND:VALARM"
)


def test_what_an_export_carries_besides_times_and_titles_costs_little_to_read() -> None:
    """A real 4,778-event export took 2.5-3.7 s a poll: its descriptions, attendees and alarms freeze nothing."""

    def feed(extra: str) -> str:
        starts = [NOW + timedelta(minutes=47 * i) for i in range(2000)]
        return calendar(
            *(
                f"UID:r{i}\r\nSUMMARY:Release {i}\r\nDTSTART:{at:%Y%m%dT%H%M%SZ}\r\nDURATION:PT30M{extra}"
                for i, at in enumerate(starts)
            )
        )

    def cpu_seconds(text: str) -> float:
        began = time.process_time()
        assert len(parse_feed(text, zone=SYDNEY, now=NOW).events) == 2000
        return time.process_time() - began

    bare, exported = feed(""), feed("\r\n" + EXPORTED)
    assert len(exported) > 4 * len(bare)
    # Measured against the same events without the extras, so a slow or busy machine does not matter.
    assert min(cpu_seconds(exported) for _ in range(2)) < 2 * min(cpu_seconds(bare) for _ in range(2))
