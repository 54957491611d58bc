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
import ssl
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cache
from zoneinfo import ZoneInfo

import httpx
from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.orm import Session

from adapters.base import MissingSecretError, resolve_env
from bot.audit import service as audit
from bot.freezes.config import FreezeCalendar
from bot.freezes.health import FeedHealth, feed_health
from bot.freezes.ical import FeedError, FeedEvent, FeedLimits, ParsedFeed, decode, parse_feed
from bot.freezes.models import Freeze, FreezeFeed, feed_source
from bot.vocabulary import format_duration
from bot.words import SYSTEM_ACTOR, Words
from storage.db import Database, insert_ignoring, rowcount, utcnow

log = logging.getLogger(__name__)

MAX_BYTES = 5 * 1024 * 1024
DEFAULT_TIMEOUT = httpx.Timeout(10.0, connect=5.0)
DEFAULT_LIMITS = FeedLimits()
# An unchanged feed is still parsed again this often: its occurrences are read up to a horizon that moves
# with time, so a weekly series in a feed nobody edits keeps freezing 180 days ahead.
REREAD = timedelta(days=1)


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


@dataclass(frozen=True)
class PollResult:
    label: str
    ok: bool
    freezes: int
    changed: bool = False
    error: str | None = None
    warning: str | None = None
    went_empty: int = 0  # this read found the feed empty: how many freezes to come it keeps one more poll


@dataclass(frozen=True)
class Download:
    """A feed's body, or ``None`` when the server said it has not changed (HTTP 304)."""

    content: bytes | None
    charset: str | None = None
    etag: str | None = None
    last_modified: str | None = None


def went_empty_words(calendar: FreezeCalendar, kept: int) -> Words:
    """What the channel is told, once, when a feed that held freezes to come suddenly reads empty."""
    return Words.of(
        f"The calendar {calendar.label} has no events now; it held {kept} freezes still to come. They hold until "
        f"its next read (in {format_duration(calendar.poll)}) and are dropped then if it still reads empty. "
        "If the calendar was emptied by mistake, restore its events now; `/chaos freeze list` shows what it holds."
    )


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
        limits: FeedLimits = DEFAULT_LIMITS,
    ) -> None:
        self.db = db
        self.calendars = list(calendars)
        self.zone = zone
        self.clock = clock
        self.timeout = timeout
        self.environ = environ
        self.limits = limits
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
        with self.db.transaction() as session:
            feed = self._feed(session, calendar, now)
            known = Download(None, etag=feed.etag, last_modified=feed.last_modified)
            known_hash, kept = feed.content_hash, feed.freeze_count
            if feed.read_at is None or now - feed.read_at >= REREAD:  # the horizon moved: read it whole
                known, known_hash = Download(None), None
        try:
            download = self._fetch(calendar, known)
            content_hash = hashlib.sha256(download.content).hexdigest() if download.content is not None else None
            if download.content is None or content_hash == known_hash:
                self._unchanged(calendar, download, now)
                return PollResult(calendar.label, ok=True, freezes=kept)
            parsed = parse_feed(decode(download.content, download.charset), zone=self.zone, now=now, limits=self.limits)
        except FeedError as exc:
            return self._failed(calendar, str(exc), now)
        return self._store(calendar, parsed, download, content_hash, now)

    def _failed(self, calendar: FreezeCalendar, error: str, now: datetime) -> PollResult:
        with self.db.transaction() as session:
            feed = self._feed(session, calendar, now)
            feed.last_attempt_at, feed.last_error = now, error
            kept = feed.freeze_count
        log.warning("calendar %s could not be read, keeping its %s freezes: %s", calendar.label, kept, error)
        return PollResult(calendar.label, ok=False, freezes=kept, error=error)

    def _unchanged(self, calendar: FreezeCalendar, download: Download, now: datetime) -> None:
        """The server said 304, or sent the same bytes: nothing to parse, the feed is fresh."""
        with self.db.transaction() as session:
            feed = self._feed(session, calendar, now)
            feed.last_attempt_at, feed.last_success_at, feed.last_error = now, now, None
            feed.etag = download.etag or feed.etag
            feed.last_modified = download.last_modified or feed.last_modified

    def health(self) -> list[FeedHealth]:
        return feed_health(self.db, self.calendars, self.clock())

    def stale(self) -> list[FeedHealth]:
        """Feeds whose last read failed or is older than two polls: their last known freezes still hold."""
        return [feed for feed in self.health() if feed.stale]

    def attention(self) -> list[FeedHealth]:
        """Feeds that are stale or degraded (parts skipped or cut, or gone empty): for /healthz and the logs."""
        return [feed for feed in self.health() if feed.needs_attention]

    # -- internals -------------------------------------------------------------------------------

    def _fetch(self, calendar: FreezeCalendar, known: Download) -> Download:
        try:
            url = str(resolve_env(calendar.url, self.environ))
        except MissingSecretError as exc:
            raise FeedError(f"the environment variable {exc.variable} is not set") from None
        self.url_filter.hide(calendar, url)
        try:
            with httpx.Client(timeout=self.timeout, follow_redirects=True, verify=_tls()) as client:
                response = client.get(url, headers=_conditional(known))
        except httpx.TimeoutException as exc:
            raise FeedError(f"timed out ({type(exc).__name__})") from None
        except httpx.HTTPError as exc:
            raise FeedError(f"could not connect ({type(exc).__name__})") from None
        validators = {"etag": response.headers.get("ETag"), "last_modified": response.headers.get("Last-Modified")}
        if response.status_code == 304:
            return Download(None, **validators)
        if response.status_code != 200:
            raise FeedError(f"HTTP {response.status_code}")
        if len(response.content) > MAX_BYTES:
            raise FeedError(f"the feed is larger than {MAX_BYTES // (1024 * 1024)} MB")
        return Download(response.content, charset=response.charset_encoding, **validators)

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

    def _store(
        self, calendar: FreezeCalendar, parsed: ParsedFeed, download: Download, content_hash: str | None, now: datetime
    ) -> PollResult:
        """Replace the feed's freezes in one transaction, only when the events changed (freeze ids stay stable).

        A feed that suddenly reads empty keeps its freezes for one more poll and says so (``went_empty``): a
        calendar emptied by mistake (or a server sending an empty placeholder) must be seen before the freezes
        it held are dropped. A feed whose freezes have all ended reads empty by itself: those go at once.
        """
        events, warning = parsed.events, "; ".join(parsed.notes)[:1000] or None
        new_digest = digest(events)
        with self.db.transaction() as session:
            feed = self._feed(session, calendar, now)
            ahead = self._ahead(session, calendar, now) if not events and feed.empty_since is None else 0
            if ahead:
                feed.empty_since, feed.last_attempt_at, feed.last_success_at = now, now, now
                feed.last_error = None
                # The next read must parse whatever comes (empty again, or the old body restored) to decide.
                feed.content_hash, feed.etag, feed.last_modified = None, None, None
                feed.warning = f"the feed has no events now (it had {ahead} to come); they are kept until the next poll"
                log.warning("calendar %s %s", calendar.label, feed.warning)
                return PollResult(
                    calendar.label, ok=True, freezes=feed.freeze_count, warning=feed.warning, went_empty=ahead
                )
            changed = feed.events_digest != new_digest
            if changed:
                self._replace(session, calendar, events, new_digest, now)
            feed.label, feed.empty_since, feed.warning = calendar.label, None, warning
            feed.last_attempt_at, feed.last_success_at, feed.last_error = now, now, None
            feed.events_digest, feed.freeze_count = new_digest, len(events)
            feed.content_hash, feed.etag, feed.last_modified = content_hash, download.etag, download.last_modified
            feed.read_at = now
        if changed:
            log.info("calendar %s changed: %s freezes", calendar.label, len(events))
        if warning:
            log.warning("calendar %s is degraded: %s", calendar.label, warning)
        return PollResult(calendar.label, ok=True, freezes=len(events), changed=changed, warning=warning)

    @staticmethod
    def _ahead(session: Session, calendar: FreezeCalendar, now: datetime) -> int:
        """The feed's cached freezes that have not ended yet."""
        counted = (
            select(func.count())
            .select_from(Freeze)
            .where(Freeze.source == feed_source(calendar.key), Freeze.ends_at > now, Freeze.removed_at.is_(None))
        )
        return int(session.scalar(counted) or 0)

    @staticmethod
    def _replace(
        session: Session, calendar: FreezeCalendar, events: list[FeedEvent], new_digest: str, now: datetime
    ) -> None:
        source = feed_source(calendar.key)
        session.execute(delete(Freeze).where(Freeze.source == source))
        if events:  # one bulk INSERT: a 5,000-event feed is stored in a fraction of the ORM's time
            session.execute(
                insert(Freeze),
                [
                    {
                        "starts_at": event.starts_at,
                        "ends_at": event.ends_at,
                        "environments": [],
                        "reason": event.reason,
                        "added_by": calendar.label,
                        "added_at": now,
                        "source": source,
                        "event": event.event,
                        "version": 1,
                    }
                    for event in events
                ],
            )
        audit.append(
            session,
            actor=SYSTEM_ACTOR,
            action="freeze.calendar_changed",
            payload={"calendar": calendar.label, "freezes": len(events), "digest": new_digest},
        )


@cache
def _tls() -> ssl.SSLContext:
    """httpx's own default (its CA bundle), built once: loading the bundle took 25-150 ms of every poll, most
    of what an unchanged feed costs."""
    return httpx.create_ssl_context()


def _conditional(known: Download) -> dict[str, str]:
    headers = {"Accept": "text/calendar"}
    if known.etag:
        headers["If-None-Match"] = known.etag
    if known.last_modified:
        headers["If-Modified-Since"] = known.last_modified
    return headers
