"""Reading an iCalendar feed into freeze windows: lenient per event, bounded per feed.

Real feeds are messy: a broken event, an empty ``EXDATE`` or a second ``VCALENDAR`` must not void the freezes
of every other event, and a careless ``RRULE:FREQ=SECONDLY`` must not expand into millions of occurrences.
So each broken part is skipped and counted, recurring series are expanded window by window with a cap per
feed, and what was skipped or cut is reported as notes (the feed is then "degraded", its freezes still hold).

``TRANSP:TRANSPARENT`` events freeze too: Google marks all-day events transparent by default.
"""

from __future__ import annotations

import itertools
import re
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

HORIZON_BACK = timedelta(days=1)
HORIZON_AHEAD = timedelta(days=180)
MAX_OCCURRENCES = 5000
MAX_REASON = 500
FIRST_WINDOW = timedelta(hours=1)  # a recurring series is first expanded over this long, then adaptively
WINDOW_TARGET = 500  # occurrences a window of a recurring series should yield


class FeedError(Exception):
    """A feed could not be read at all; the message is safe to store and log (no URL)."""


@dataclass(frozen=True)
class FeedLimits:
    back: timedelta = HORIZON_BACK
    ahead: timedelta = HORIZON_AHEAD
    occurrences: int = MAX_OCCURRENCES


@dataclass(frozen=True)
class FeedEvent:
    """One occurrence of a calendar event, as a freeze of every environment."""

    starts_at: datetime
    ends_at: datetime
    reason: str
    event: str  # UID @ occurrence start


@dataclass
class ParsedFeed:
    """The freezes a feed holds, and what was skipped or cut on the way (empty when the feed was clean)."""

    events: list[FeedEvent] = field(default_factory=list)
    skipped: Counter[str] = field(default_factory=Counter)

    @property
    def notes(self) -> list[str]:
        return [f"{count} x {what}" for what, count in sorted(self.skipped.items())]

    @property
    def degraded(self) -> bool:
        return bool(self.skipped)


def decode(content: bytes, charset: str | None) -> str:
    """The feed's text in the charset its response named; UTF-8 by default, Latin-1 when UTF-8 does not fit."""
    if charset:
        try:
            return content.decode(charset)
        except (LookupError, UnicodeDecodeError):
            pass
    try:
        return content.decode("utf-8-sig")
    except UnicodeDecodeError:
        return content.decode("cp1252", errors="replace")


def parse_feed(text: str, *, zone: ZoneInfo, now: datetime, limits: FeedLimits | None = None) -> ParsedFeed:
    """Every event occurrence between ``now - back`` and ``now + ahead``; floating and all-day times in ``zone``."""
    # Imported here: most teams configure no feed, and a serving replica's idle memory matters.
    import icalendar

    if "BEGIN:VCALENDAR" not in text[:4096].upper():
        raise FeedError("not a readable iCalendar file (no BEGIN:VCALENDAR: an HTML page or an error page?)")
    text = _what_freezes_need(text)
    try:
        calendars = icalendar.Calendar.from_ical(text, multiple=True)
    except Exception as exc:  # the parser raises ValueError, KeyError and its own types
        raise FeedError(f"not a readable iCalendar file ({type(exc).__name__}: {str(exc)[:200]})") from None
    if not calendars:
        raise FeedError("not a readable iCalendar file (no VCALENDAR in it)")
    limits = limits or FeedLimits()
    parsed = ParsedFeed()
    start, stop = now - limits.back, now + limits.ahead
    occurrences: list[FeedEvent] = []
    reading = _Reading(zone, _durations(text))
    for calendar in calendars:
        _repair(calendar, zone, parsed.skipped)
        single, recurring = _split(calendar)
        # The expander reads floating times in the calendar's X-WR-TIMEZONE (Google's exports): single events too.
        occurrences.extend(_singles(single, start, stop, replace(reading, floating=_named_zone(calendar, zone))))
        occurrences.extend(_expand(recurring, (start, stop), reading, limits.occurrences, parsed.skipped))
    unique = sorted(set(occurrences), key=lambda event: (event.starts_at, event.ends_at, event.event))
    if len(unique) > limits.occurrences:
        parsed.skipped[f"occurrence past the cap of {limits.occurrences}"] += len(unique) - limits.occurrences
        unique = unique[: limits.occurrences]
    parsed.events = unique
    return parsed


# What an event's freeze is made of: its times, recurrence and title, and what decides which version of an
# occurrence counts. Everything else in an event (descriptions, attendees, alarms, stamps) is left out before
# parsing: parsing is most of a poll's cost, and a real feed's events carry far more than this.
EVENT_PROPERTIES = frozenset(
    {"UID", "DTSTART", "DTEND", "DURATION", "SUMMARY", "STATUS", "SEQUENCE", "RECURRENCE-ID"}
    | {"RRULE", "RDATE", "EXDATE", "EXRULE"}
)


FOLD = re.compile(r"(?:\r?\n)+[ \t]")  # a line break (blank lines too) and a space or tab: one content line


def _what_freezes_need(text: str) -> str:
    """The feed without the event properties and alarms no freeze reads; calendars and time zones stay whole."""
    kept: list[str] = []
    in_event = in_alarm = False
    for line in re.split(r"\r?\n", FOLD.sub("", text)):
        name = line.split(":", 1)[0].split(";", 1)[0].strip().upper()
        value = line.partition(":")[2].strip().upper() if name in ("BEGIN", "END") else ""
        if value == "VALARM":
            in_alarm = name == "BEGIN"
        elif value == "VEVENT":
            in_event = name == "BEGIN"
            kept.append(line)
        elif not in_alarm and (not in_event or name in EVENT_PROPERTIES):
            kept.append(line)
    return "\r\n".join(kept)


def _repair(calendar: Any, zone: ZoneInfo, skipped: Counter[str]) -> None:
    """Drop what cannot be read, one event or one property at a time, and count it."""
    named = str(calendar.get("X-WR-TIMEZONE", "")).strip()
    if named and _named_zone(calendar, None) is None:  # the expander would refuse every series over it
        calendar.pop("X-WR-TIMEZONE")
        skipped[f"unknown X-WR-TIMEZONE {named[:60]!r} ignored"] += 1
    known_zones = {str(tz.get("TZID")) for tz in calendar.walk("VTIMEZONE")}
    floating = _named_zone(calendar, None)
    read_as = f"the calendar's {floating.key}" if floating else "team time"
    cores_per_uid: Counter[str] = Counter()
    for component in list(calendar.subcomponents):
        if component.name != "VEVENT":
            continue
        broken = {name for name, _ in getattr(component, "errors", [])}
        if component.get("DTSTART") is None or "DTSTART" in broken or "DTEND" in broken:
            calendar.subcomponents.remove(component)
            skipped["event without a readable DTSTART or DTEND"] += 1
            continue
        for name in broken:
            component.pop(name, None)
            skipped[f"unreadable {name} ignored"] += 1
        _note_unknown_zone(component, known_zones, read_as, skipped)
        uid = str(component.get("UID", "")) or "no-uid"
        if component.get("RECURRENCE-ID") is None:
            cores_per_uid[uid] += 1
            if cores_per_uid[uid] > 1:  # a second event under one UID is a second freeze, not a duplicate
                component["UID"] = f"{uid}#{cores_per_uid[uid]}"


def _note_unknown_zone(component: Any, known_zones: set[str], read_as: str, skipped: Counter[str]) -> None:
    for name in ("DTSTART", "DTEND"):
        prop = component.get(name)
        tzid = prop.params.get("TZID") if prop is not None else None
        if tzid and tzid not in known_zones and isinstance(prop.dt, datetime) and prop.dt.tzinfo is None:
            skipped[f"unknown time zone {str(tzid)[:60]!r} read as {read_as}"] += 1


def _split(calendar: Any) -> tuple[list[Any], Any]:
    """Single events (read directly: most of a big feed) and a calendar of the series that need expanding."""
    import icalendar

    events = [c for c in calendar.subcomponents if c.name == "VEVENT"]
    series = {
        str(c.get("UID", ""))
        for c in events
        if any(c.get(name) is not None for name in ("RRULE", "RDATE", "RECURRENCE-ID"))
    }
    recurring = icalendar.Calendar()
    for key, value in calendar.items():
        recurring[key] = value
    single = []
    for component in calendar.subcomponents:
        if component.name == "VEVENT" and str(component.get("UID", "")) not in series:
            single.append(component)
        else:
            recurring.add_component(component)
    return single, recurring


def _singles(events: list[Any], start: datetime, stop: datetime, reading: _Reading) -> Iterator[FeedEvent]:
    for component in events:
        event = _event(component, reading)
        if event is not None and event.starts_at < stop and event.ends_at > start:
            yield event


def _expand(
    part: Any, span: tuple[datetime, datetime], reading: _Reading, cap: int, skipped: Counter[str]
) -> Iterator[FeedEvent]:
    import recurring_ical_events  # type: ignore[import-untyped]  # ships neither stubs nor py.typed

    bad = (*recurring_ical_events.CalendarQuery.suppressed_errors, KeyError, ValueError, TypeError)
    uids = {str(c.get("UID", "")) for c in part.walk("VEVENT")}

    try:
        query = recurring_ical_events.of(part, skip_bad_series=True)
    except bad as exc:
        skipped[f"calendar that could not be expanded ({type(exc).__name__})"] += 1
        return
    if len(query.series) < len(uids):
        skipped["event series with an invalid rule"] += len(uids) - len(query.series)
    for series in query.series:
        try:
            for component in itertools.islice(_occurrences(series, *span), cap + 1):
                event = _event(component, reading)
                if event is not None:
                    yield event
        except bad as exc:
            skipped[f"event series that could not be expanded ({type(exc).__name__})"] += 1


def _occurrences(series: Any, start: datetime, stop: datetime) -> Iterable[Any]:
    """A series' occurrences, window by window, so a rule that fires every second stops at the cap cheaply."""
    seen: set[object] = set()
    window = FIRST_WINDOW
    at = start
    while at < stop:
        until = min(at + window, stop)
        found = 0
        for occurrence in series.between(at, until):
            found += 1
            if occurrence.id in seen:
                continue
            seen.add(occurrence.id)
            yield occurrence.as_component(False)
        at = until
        window = max(timedelta(seconds=1), min(window * 8, window * WINDOW_TARGET / max(found, 1)))


@dataclass(frozen=True)
class _Reading:
    zone: ZoneInfo  # all-day times are team time
    durations: dict[str, tuple[timedelta, timedelta]]  # UID -> DURATION as (nominal days, exact time)
    floating: ZoneInfo | None = None  # floating times: the calendar's X-WR-TIMEZONE, or team time


DURATION = re.compile(r"^([+-]?)P(?:(\d+)W)?(?:(\d+)D)?(?:T(?:(\d+)H)?(?:(\d+)M)?(?:(\d+)S)?)?$")


def _durations(text: str) -> dict[str, tuple[timedelta, timedelta]]:
    """Each series' DURATION as written: the parser folds PT24H into one day, but RFC 5545 keeps them apart.

    ``P1D`` is one calendar day (23 or 25 hours across a daylight-saving change), ``PT24H`` exactly 24 hours.
    """
    found: dict[str, tuple[timedelta, timedelta]] = {}
    uid, duration, modification = "", "", False
    for line in re.sub(r"\r?\n[ \t]", "", text).splitlines():
        name, _, value = line.partition(":")
        name = name.split(";", 1)[0].upper()
        if name == "BEGIN" and value.upper() == "VEVENT":
            uid, duration, modification = "", "", False
        elif name in ("UID", "DURATION"):
            uid, duration = (value, duration) if name == "UID" else (uid, value.strip())
        elif name == "RECURRENCE-ID":
            modification = True
        elif name == "END" and value.upper() == "VEVENT" and duration and not modification:
            match = DURATION.match(duration.upper())
            if match and match.group(1) != "-":
                weeks, days, hours, minutes, seconds = (int(part or 0) for part in match.groups()[1:])
                found.setdefault(uid, (timedelta(days=7 * weeks + days), timedelta(0, seconds, 0, 0, minutes, hours)))
    return found


def _event(component: Any, reading: _Reading) -> FeedEvent | None:
    if str(component.get("STATUS", "")).upper() == "CANCELLED":
        return None
    zone = reading.zone
    raw_start = component.get("DTSTART").dt
    starts_at = _moment(raw_start, reading)
    end_prop = component.get("DTEND")
    all_day = not isinstance(raw_start, datetime)
    nominal, exact = reading.durations.get(str(component.get("UID", "")), (None, None))
    if end_prop is not None and nominal is not None:
        # An occurrence the expander ended by adding DURATION as wall time: add its hours as elapsed time.
        wall = _moment(end_prop.dt, reading).replace(tzinfo=None) - starts_at.replace(tzinfo=None)
        expected = nominal + (exact or timedelta(0))
        ends_at = _after(starts_at, nominal, exact) if wall == expected else _moment(end_prop.dt, reading)
    elif end_prop is not None:
        ends_at = _moment(end_prop.dt, reading)
    elif component.get("DURATION") is not None:
        ends_at = _after(starts_at, nominal, exact) if nominal is not None else starts_at + component["DURATION"].dt
    elif all_day:
        ends_at = starts_at + timedelta(days=1)  # an all-day event without an end lasts the day
    else:
        return None  # an instant: nothing to freeze
    if all_day and ends_at <= starts_at:
        ends_at = datetime.combine(raw_start + timedelta(days=1), time(), tzinfo=zone)  # DTEND = DTSTART: the day
    if ends_at <= starts_at:
        return None
    starts_at, ends_at = starts_at.astimezone(UTC), ends_at.astimezone(UTC)
    summary = " ".join(str(component.get("SUMMARY", "")).split()) or "calendar event"
    uid = str(component.get("UID", "")) or "no-uid"
    return FeedEvent(
        starts_at=starts_at,
        ends_at=ends_at,
        reason=summary[:MAX_REASON],
        event=f"{uid}@{starts_at.isoformat()}"[:300],
    )


def _after(starts_at: datetime, nominal: timedelta, exact: timedelta | None) -> datetime:
    """Days on the calendar (wall clock), then hours, minutes and seconds as elapsed time."""
    return (starts_at + nominal).astimezone(UTC) + (exact or timedelta(0))


def _moment(value: date | datetime, reading: _Reading) -> datetime:
    if not isinstance(value, datetime):
        return datetime.combine(value, time(), tzinfo=reading.zone)
    return value.replace(tzinfo=reading.floating or reading.zone) if value.tzinfo is None else value


def _named_zone(calendar: Any, default: ZoneInfo | None) -> ZoneInfo | None:
    """The zone a calendar's X-WR-TIMEZONE names, when it names one this machine knows; else ``default``."""
    name = str(calendar.get("X-WR-TIMEZONE", "")).strip()
    try:
        return ZoneInfo(name) if name else default
    except (ValueError, KeyError, OSError):  # not a zone name (ZoneInfoNotFoundError is a KeyError)
        return default
