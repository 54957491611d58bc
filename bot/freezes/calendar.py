"""Freezes from iCalendar feeds: every event (recurrences expanded) freezes every environment.

Policy: ``freeze_calendars: [{url: ${DELIVERIES_ICAL_URL}, poll: 5m}]``. The runtime calls
``CalendarFeeds.poll_due()`` every few seconds in every replica; each feed is polled by one replica per
``poll`` (a conditional UPDATE of ``next_poll_at`` is the claim). A poll fetches with no transaction open,
then replaces the feed's cached freezes in one transaction. When the feed is down the cached freezes keep
holding, and ``stale()`` says so for the health check and the logs.

The URL's ``${VAR}`` is resolved at fetch time only. The database, the logs and error messages know a
feed by its label (``name``, the variable's name, or a hash of the URL as written), never by its URL.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import httpx
from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from adapters.base import MissingSecretError, resolve_env
from bot.audit import service as audit
from bot.freezes.config import FreezeCalendar
from bot.freezes.models import Freeze, FreezeFeed, feed_source
from bot.words import SYSTEM_ACTOR
from storage.db import Database, insert_ignoring, rowcount, utcnow

log = logging.getLogger(__name__)

HORIZON_BACK = timedelta(days=1)
HORIZON_AHEAD = timedelta(days=180)
MAX_BYTES = 5 * 1024 * 1024
MAX_REASON = 500
DEFAULT_TIMEOUT = httpx.Timeout(10.0, connect=5.0)


HTTPX_LOG = "httpx"  # httpx logs every request's URL at INFO on this logger


class FeedUrlFilter(logging.Filter):
    """Names a feed by its label in httpx's log lines: a feed's URL is a secret.

    Holds one entry per calendar (its URL as last resolved, as given and as httpx prints it), replaced on
    every fetch, so it never grows past the policy's calendars. Poll threads write it and any logging thread
    reads it: both under the lock."""

    def __init__(self) -> None:
        super().__init__()
        self._lock = threading.Lock()
        self._urls: dict[str, tuple[frozenset[str], str]] = {}  # calendar key -> (URL spellings, label)

    def hide(self, calendar: FreezeCalendar, url: str) -> None:
        with self._lock:
            self._urls[calendar.key] = (frozenset({url, str(httpx.URL(url))}), calendar.label)

    @property
    def size(self) -> int:
        """How many calendars' URLs are hidden (at most the policy's calendars)."""
        with self._lock:
            return len(self._urls)

    def filter(self, record: logging.LogRecord) -> bool:
        with self._lock:
            hiding = list(self._urls.values())
        message = record.getMessage()
        hidden = message
        for urls, label in hiding:
            for url in urls:
                hidden = hidden.replace(url, f"[calendar {label}]")
        if hidden != message:
            record.msg, record.args = hidden, None
        return True


class FeedError(Exception):
    """A feed could not be read; the message is safe to store and log (no URL)."""


@dataclass(frozen=True)
class FeedEvent:
    """One occurrence of a calendar event, as a freeze of every environment."""

    starts_at: datetime
    ends_at: datetime
    reason: str
    event: str  # UID @ occurrence start


@dataclass(frozen=True)
class PollResult:
    label: str
    ok: bool
    freezes: int
    changed: bool = False
    error: str | None = None


@dataclass(frozen=True)
class FeedHealth:
    label: str
    last_success_at: datetime | None
    last_attempt_at: datetime | None
    last_error: str | None
    freezes: int
    stale: bool

    def sentence(self) -> str:
        """``calendar DELIVERIES_ICAL_URL is stale: last read …, last error: HTTP 500`` (no URL)."""
        read = self.last_success_at.isoformat(timespec="seconds") if self.last_success_at else "never"
        state = "is stale" if self.stale else "is fresh"
        error = f", last error: {self.last_error}" if self.last_error else ""
        return f"calendar {self.label} {state}: last read {read} ({self.freezes} freezes kept){error}"


def parse_feed(
    text: str | bytes,
    *,
    zone: ZoneInfo,
    now: datetime,
    back: timedelta = HORIZON_BACK,
    ahead: timedelta = HORIZON_AHEAD,
) -> list[FeedEvent]:
    """Every event occurrence between ``now - back`` and ``now + ahead``; floating and all-day times in ``zone``."""
    # Imported here: most teams configure no feed, and a serving replica's idle memory matters.
    import icalendar
    import recurring_ical_events  # type: ignore[import-untyped]  # ships neither stubs nor py.typed

    try:
        calendar = icalendar.Calendar.from_ical(text)
        occurrences = recurring_ical_events.of(calendar).between(now - back, now + ahead)
    except Exception as exc:  # the parsers raise ValueError, KeyError and their own types
        raise FeedError(f"not a readable iCalendar file ({type(exc).__name__}: {str(exc)[:200]})") from None
    events = []
    for occurrence in occurrences:
        if str(occurrence.get("STATUS", "")).upper() == "CANCELLED":
            continue
        event = _event(occurrence, zone)
        if event is not None:
            events.append(event)
    return sorted(events, key=lambda event: (event.starts_at, event.ends_at, event.event))


def _event(component: Any, zone: ZoneInfo) -> FeedEvent | None:
    start_prop = component.get("DTSTART")
    if start_prop is None:
        return None
    raw_start = start_prop.dt
    starts_at = _moment(raw_start, zone)
    end_prop = component.get("DTEND")
    if end_prop is not None:
        ends_at = _moment(end_prop.dt, zone)
    elif component.get("DURATION") is not None:
        ends_at = starts_at + component.get("DURATION").dt
    elif not isinstance(raw_start, datetime):
        ends_at = starts_at + timedelta(days=1)  # RFC 5545: an all-day event without an end lasts the day
    else:
        return None  # an instant: nothing to freeze
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


def _moment(value: date | datetime, zone: ZoneInfo) -> datetime:
    if not isinstance(value, datetime):
        return datetime.combine(value, time(), tzinfo=zone)
    return value.replace(tzinfo=zone) if value.tzinfo is None else value


def digest(events: Sequence[FeedEvent]) -> str:
    material = "\n".join(f"{e.starts_at.isoformat()}|{e.ends_at.isoformat()}|{e.event}|{e.reason}" for e in events)
    return hashlib.sha256(material.encode()).hexdigest()


class CalendarFeeds:
    """The policy's calendar feeds: polled, cached as freezes, and reported when stale."""

    def __init__(
        self,
        db: Database,
        calendars: Sequence[FreezeCalendar],
        *,
        zone: ZoneInfo,
        clock: Callable[[], datetime] = utcnow,
        timeout: httpx.Timeout = DEFAULT_TIMEOUT,
        environ: Mapping[str, str] | None = None,
    ) -> None:
        self.db = db
        self.calendars = list(calendars)
        self.zone = zone
        self.clock = clock
        self.timeout = timeout
        self.environ = environ
        self.url_filter = FeedUrlFilter()

    def hide_urls_in_logs(self) -> None:
        """Install the filter that keeps the feeds' URLs out of httpx's log lines (the runtime does, at start)."""
        logging.getLogger(HTTPX_LOG).addFilter(self.url_filter)

    def stop_hiding_urls(self) -> None:
        """Remove that filter again (the runtime does, at close)."""
        logging.getLogger(HTTPX_LOG).removeFilter(self.url_filter)

    def poll_due(self) -> list[PollResult]:
        """Poll every feed whose turn has come and which this replica claims (call it every few seconds)."""
        results = []
        for calendar in self.calendars:
            if self._claim(calendar):
                results.append(self.refresh(calendar))
        return results

    def refresh(self, calendar: FreezeCalendar) -> PollResult:
        """Fetch and parse one feed now, then replace its cached freezes (or record the error, keeping them)."""
        now = self.clock()
        try:
            events = parse_feed(self._fetch(calendar), zone=self.zone, now=now)
        except FeedError as exc:
            error = str(exc)
            with self.db.transaction() as session:
                feed = self._feed(session, calendar, now)
                feed.last_attempt_at, feed.last_error = now, error
                kept = feed.freeze_count
            log.warning("calendar %s could not be read, keeping its %s freezes: %s", calendar.label, kept, error)
            return PollResult(calendar.label, ok=False, freezes=kept, error=error)
        changed = self._store(calendar, events, now)
        return PollResult(calendar.label, ok=True, freezes=len(events), changed=changed)

    def health(self) -> list[FeedHealth]:
        now = self.clock()
        with self.db.transaction() as session:
            rows = {
                feed.key: feed
                for feed in session.scalars(
                    select(FreezeFeed).where(FreezeFeed.key.in_([c.key for c in self.calendars]))
                )
            }
        report = []
        for calendar in self.calendars:
            feed = rows.get(calendar.key)
            if feed is None:
                report.append(FeedHealth(calendar.label, None, None, None, 0, stale=True))
                continue
            late = feed.last_success_at is None or now - feed.last_success_at > 2 * calendar.poll + timedelta(minutes=1)
            report.append(
                FeedHealth(
                    label=calendar.label,
                    last_success_at=feed.last_success_at,
                    last_attempt_at=feed.last_attempt_at,
                    last_error=feed.last_error,
                    freezes=feed.freeze_count,
                    stale=late or feed.last_error is not None,
                )
            )
        return report

    def stale(self) -> list[FeedHealth]:
        """Feeds whose last read failed or is older than two polls: their last known freezes still hold."""
        return [feed for feed in self.health() if feed.stale]

    # -- internals -------------------------------------------------------------------------------

    def _fetch(self, calendar: FreezeCalendar) -> bytes:
        try:
            url = str(resolve_env(calendar.url, self.environ))
        except MissingSecretError as exc:
            raise FeedError(f"the environment variable {exc.variable} is not set") from None
        self.url_filter.hide(calendar, url)
        try:
            with httpx.Client(timeout=self.timeout, follow_redirects=True) as client:
                response = client.get(url, headers={"Accept": "text/calendar"})
        except httpx.TimeoutException as exc:
            raise FeedError(f"timed out ({type(exc).__name__})") from None
        except httpx.HTTPError as exc:
            raise FeedError(f"could not connect ({type(exc).__name__})") from None
        if response.status_code != 200:
            raise FeedError(f"HTTP {response.status_code}")
        if len(response.content) > MAX_BYTES:
            raise FeedError(f"the feed is larger than {MAX_BYTES // (1024 * 1024)} MB")
        return response.content

    def _claim(self, calendar: FreezeCalendar) -> bool:
        now = self.clock()
        with self.db.transaction() as session:
            self._feed(session, calendar, now)
            result = session.execute(
                update(FreezeFeed)
                .where(FreezeFeed.key == calendar.key, FreezeFeed.next_poll_at <= now)
                .values(next_poll_at=now + calendar.poll, last_attempt_at=now, label=calendar.label)
                .execution_options(synchronize_session=False)
            )
            return rowcount(result) == 1

    def _feed(self, session: Session, calendar: FreezeCalendar, now: datetime) -> FreezeFeed:
        values = {"key": calendar.key, "label": calendar.label, "next_poll_at": now, "freeze_count": 0}
        insert_ignoring(session, FreezeFeed, values)
        feed = session.get(FreezeFeed, calendar.key, populate_existing=True)
        assert feed is not None  # inserted just above if it was missing
        return feed

    def _store(self, calendar: FreezeCalendar, events: list[FeedEvent], now: datetime) -> bool:
        """Replace the feed's freezes in one transaction, only when the events changed (freeze ids stay stable)."""
        new_digest = digest(events)
        with self.db.transaction() as session:
            feed = self._feed(session, calendar, now)
            changed = feed.events_digest != new_digest
            if changed:
                source = feed_source(calendar.key)
                session.execute(delete(Freeze).where(Freeze.source == source))
                session.add_all(
                    Freeze(
                        starts_at=event.starts_at,
                        ends_at=event.ends_at,
                        environments=[],
                        reason=event.reason,
                        added_by=calendar.label,
                        added_at=now,
                        source=source,
                        event=event.event,
                        version=1,
                    )
                    for event in events
                )
                audit.append(
                    session,
                    actor=SYSTEM_ACTOR,
                    action="freeze.calendar_changed",
                    payload={"calendar": calendar.label, "freezes": len(events), "digest": new_digest},
                )
            feed.label = calendar.label
            feed.last_attempt_at, feed.last_success_at, feed.last_error = now, now, None
            feed.events_digest, feed.freeze_count = new_digest, len(events)
        if changed:
            log.info("calendar %s changed: %s freezes", calendar.label, len(events))
        return changed
