"""Freezes from an iCalendar feed served over real HTTP: expansion, caching, outages, and no URL anywhere."""

from __future__ import annotations

import io
import logging
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from sqlalchemy import select

from bot.audit.models import AuditEvent
from bot.console.shell import ConsoleSurface
from bot.freezes.calendar import CalendarFeeds, FeedUrlFilter
from bot.freezes.config import FreezeCalendar
from bot.freezes.models import Freeze, FreezeFeed
from bot.freezes.service import Freezes, listing_words
from bot.interface.publisher import Publisher
from bot.interface.schedule.firings import CalendarPolls
from bot.policy.models import Policy
from bot.policy.service import load_policy
from bot.runs.core import RunCore
from bot.schedule.gate import Rule, StartGate
from bot.slack.web import health as web_health
from storage.db import Database
from tests.adapters.servers import Call, FakeBackend, Reply, RunningServer, closed_port_url, running
from tests.conftest import Clock
from tests.schedule.factories import SYDNEY, add_run

SECRET_PATH = "/calendars/private-7f3a9c/deliveries.ics"
NOW = datetime(2026, 12, 2, 3, 0, tzinfo=UTC)  # Wed 02 Dec 2026 14:00 AEDT

DELIVERIES = """BEGIN:VCALENDAR
VERSION:2.0
PRODID:-//chaosbot tests//EN
BEGIN:VEVENT
UID:acme-go-live@example.org
DTSTAMP:20261201T000000Z
DTSTART;TZID=Australia/Sydney:20261210T090000
DTEND;TZID=Australia/Sydney:20261210T170000
SUMMARY:ACME go-live
END:VEVENT
BEGIN:VEVENT
UID:weekly-release@example.org
DTSTAMP:20261201T000000Z
DTSTART;TZID=Australia/Sydney:20261203T180000
DTEND;TZID=Australia/Sydney:20261203T200000
RRULE:FREQ=WEEKLY;BYDAY=TH;COUNT=4
SUMMARY:Weekly client release
END:VEVENT
END:VCALENDAR
"""


class CalendarServer(FakeBackend):
    """Serves one .ics at a private path; ``status`` makes it fail."""

    def __init__(self) -> None:
        super().__init__()
        self.body = DELIVERIES
        self.status = 200

    def route(self, call: Call) -> Reply:
        if call.path != SECRET_PATH:
            return Reply(404, "not found")
        if self.status != 200:
            return Reply(self.status, "server error")
        return Reply(200, self.body, {"Content-Type": "text/calendar"})


@pytest.fixture
def server() -> Iterator[RunningServer]:
    with running(CalendarServer()) as served:
        yield served


def feed(url: str = "${DELIVERIES_ICAL_URL}") -> FreezeCalendar:
    return FreezeCalendar(url=url, poll="5m")


def policy_with(calendar: FreezeCalendar) -> Policy:
    return load_policy().model_copy(update={"freeze_calendars": [calendar]})


def feeds(db: Database, clock: Clock, url: str, calendar: FreezeCalendar | None = None) -> CalendarFeeds:
    return CalendarFeeds(db, [calendar or feed()], zone=SYDNEY, clock=clock, environ={"DELIVERIES_ICAL_URL": url})


def cached(db: Database) -> list[Freeze]:
    with db.transaction() as session:
        return list(session.scalars(select(Freeze).order_by(Freeze.starts_at)))


@pytest.fixture
def at_now(clock: Clock) -> Clock:
    clock.now = NOW
    return clock


def test_every_event_becomes_a_freeze_of_all_environments_with_recurrences_expanded(
    db: Database, at_now: Clock, server: RunningServer
) -> None:
    calendars = feeds(db, at_now, server.url + SECRET_PATH)
    [result] = calendars.poll_due()
    assert result.ok and result.freezes == 5 and result.changed
    rows = cached(db)
    assert [(r.reason, r.starts_at.astimezone(SYDNEY).strftime("%a %d %b %H:%M")) for r in rows] == [
        ("Weekly client release", "Thu 03 Dec 18:00"),
        ("ACME go-live", "Thu 10 Dec 09:00"),
        ("Weekly client release", "Thu 10 Dec 18:00"),
        ("Weekly client release", "Thu 17 Dec 18:00"),
        ("Weekly client release", "Thu 24 Dec 18:00"),
    ]
    assert all(r.everywhere and r.from_feed and r.added_by == "DELIVERIES_ICAL_URL" for r in rows)
    assert [h.stale for h in calendars.health()] == [False]

    # The gate refuses a start inside a calendar freeze, in any environment, naming the event.
    gate = StartGate(policy_with(feed()), Freezes(db, policy_with(feed()), zone=SYDNEY, clock=at_now), zone=SYDNEY)
    run = add_run(db, planned_start=NOW, environment="staging")
    refusal = gate.refusal(run, datetime(2026, 12, 10, 10, 0, tzinfo=SYDNEY))
    assert refusal is not None and refusal.rule is Rule.FREEZE and refusal.overridable
    assert "ACME go-live" in str(refusal) and "from the calendar DELIVERIES_ICAL_URL" in str(refusal)


def test_a_feed_is_polled_once_per_interval_across_replicas_and_rows_are_kept_when_unchanged(
    db: Database, at_now: Clock, server: RunningServer
) -> None:
    url = server.url + SECRET_PATH
    replica_a, replica_b = feeds(db, at_now, url), feeds(db, at_now, url)
    assert len(replica_a.poll_due()) == 1
    assert replica_b.poll_due() == []
    ids = [r.id for r in cached(db)]
    at_now.advance(minutes=5)
    [result] = replica_b.poll_due() + replica_a.poll_due()
    assert result.ok and not result.changed
    assert [r.id for r in cached(db)] == ids  # unchanged events keep their freeze ids
    assert len(server.backend.calls_to("GET")) == 2


def test_when_the_feed_fails_the_last_known_freezes_hold_and_it_is_reported_stale(
    db: Database, at_now: Clock, server: RunningServer, caplog: pytest.LogCaptureFixture
) -> None:
    url = server.url + SECRET_PATH
    calendars = feeds(db, at_now, url)
    calendars.poll_due()
    server.backend.status = 500
    at_now.advance(minutes=5)
    with caplog.at_level(logging.WARNING):
        [result] = calendars.poll_due()
    assert not result.ok and result.error == "HTTP 500" and result.freezes == 5
    assert len(cached(db)) == 5
    [stale] = calendars.stale()
    assert stale.last_error == "HTTP 500" and stale.last_success_at == NOW
    assert "calendar DELIVERIES_ICAL_URL is stale" in stale.sentence()
    assert "HTTP 500" in caplog.text

    # The server goes away altogether.
    gone = feeds(db, at_now, closed_port_url() + SECRET_PATH)
    at_now.advance(minutes=5)
    [result] = gone.poll_due()
    assert not result.ok and result.error is not None and result.error.startswith("could not connect")
    assert len(cached(db)) == 5

    # It recovers, with one event fewer: the cache follows, and the feed is fresh again.
    server.backend.status = 200
    server.backend.body = DELIVERIES.replace("COUNT=4", "COUNT=3")
    at_now.advance(minutes=5)
    [result] = calendars.poll_due()
    assert result.ok and result.changed and len(cached(db)) == 4
    assert calendars.stale() == []


def test_the_url_is_never_stored_logged_or_told(
    db: Database, at_now: Clock, server: RunningServer, caplog: pytest.LogCaptureFixture
) -> None:
    url = server.url + SECRET_PATH
    calendars = feeds(db, at_now, url)
    calendars.hide_urls_in_logs()  # as the runtime does at start
    try:
        with caplog.at_level(logging.DEBUG):
            calendars.poll_due()
            server.backend.status = 503
            at_now.advance(minutes=5)
            calendars.poll_due()
    finally:
        calendars.stop_hiding_urls()
    with db.transaction() as session:
        stored = [repr(row.__dict__) for row in session.scalars(select(FreezeFeed))]
        stored += [repr(row.__dict__) for row in session.scalars(select(Freeze))]
        stored += [row.payload for row in session.scalars(select(AuditEvent))]
    reported = [h.sentence() for h in calendars.health()]
    for text in [*stored, *reported, caplog.text]:
        assert "private-7f3a9c" not in text


def test_the_url_filter_is_installed_by_its_owner_not_by_importing_and_removed_again(
    db: Database, at_now: Clock
) -> None:
    httpx_log = logging.getLogger("httpx")
    assert not [f for f in httpx_log.filters if isinstance(f, FeedUrlFilter)], "importing the module installed it"
    calendars = feeds(db, at_now, "https://calendar.example/private-7f3a9c.ics")
    calendars.hide_urls_in_logs()
    try:
        assert calendars.url_filter in httpx_log.filters
    finally:
        calendars.stop_hiding_urls()
    assert calendars.url_filter not in httpx_log.filters


def test_the_url_filter_holds_one_entry_per_calendar_however_often_its_url_changes() -> None:
    url_filter, calendar = FeedUrlFilter(), feed()
    for n in range(50):
        url_filter.hide(calendar, f"https://calendar.example/private-{n}.ics")
    record = logging.LogRecord(
        "httpx", logging.INFO, __file__, 1, "GET %s", ("https://calendar.example/private-49.ics",), None
    )

    assert url_filter.filter(record) and record.getMessage() == f"GET [calendar {calendar.label}]"
    assert url_filter.size == 1


def test_a_missing_variable_or_a_broken_file_is_an_error_with_the_cache_kept(
    db: Database, at_now: Clock, server: RunningServer
) -> None:
    unset = CalendarFeeds(db, [feed()], zone=SYDNEY, clock=at_now, environ={})
    [result] = unset.poll_due()
    assert not result.ok and result.error == "the environment variable DELIVERIES_ICAL_URL is not set"

    server.backend.body = "this is not a calendar"
    at_now.advance(minutes=5)
    [result] = feeds(db, at_now, server.url + SECRET_PATH).poll_due()
    assert not result.ok and result.error is not None and "not a readable iCalendar file" in result.error
    assert cached(db) == []


def test_a_feed_dropped_from_the_policy_no_longer_freezes(db: Database, at_now: Clock, server: RunningServer) -> None:
    feeds(db, at_now, server.url + SECRET_PATH).poll_due()
    inside = datetime(2026, 12, 10, 10, 0, tzinfo=SYDNEY)
    assert Freezes(db, policy_with(feed()), zone=SYDNEY, clock=at_now).covering("production", inside)
    assert Freezes(db, load_policy(), zone=SYDNEY, clock=at_now).covering("production", inside) == []


def test_the_horizon_reaches_180_days_ahead_only(db: Database, at_now: Clock, server: RunningServer) -> None:
    server.backend.body = DELIVERIES.replace("COUNT=4", "COUNT=60")
    feeds(db, at_now, server.url + SECRET_PATH).poll_due()
    last = max(r.starts_at for r in cached(db))
    assert NOW + timedelta(days=173) < last <= NOW + timedelta(days=180)


class ValidatingCalendarServer(CalendarServer):
    """Answers 304 to a request that carries the current ETag, as real calendar servers do."""

    def __init__(self) -> None:
        super().__init__()
        self.etag = '"v1"'

    def route(self, call: Call) -> Reply:
        if call.path == SECRET_PATH and call.headers.get("if-none-match") == self.etag:
            return Reply(304, "")
        reply = super().route(call)
        return Reply(reply.status, reply.body, {**reply.headers, "ETag": self.etag})


def test_an_unchanged_feed_costs_a_304_or_a_hash_not_a_parse(
    db: Database, at_now: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    parses: list[int] = []
    from bot.freezes import calendar as calendar_module

    real_parse = calendar_module.parse_feed
    monkeypatch.setattr(calendar_module, "parse_feed", lambda *a, **k: parses.append(1) or real_parse(*a, **k))
    with running(ValidatingCalendarServer()) as served:
        backend = served.backend
        assert isinstance(backend, ValidatingCalendarServer)
        calendars = feeds(db, at_now, served.url + SECRET_PATH)
        [first] = calendars.poll_due()
        at_now.advance(minutes=5)
        [second] = calendars.poll_due()  # the server answers 304
        assert backend.calls[-1].headers.get("if-none-match") == '"v1"'
        backend.etag = '"v2"'  # same body, new validator: the body's hash still matches
        at_now.advance(minutes=5)
        [third] = calendars.poll_due()
    assert first.ok and first.freezes == 5 and second.ok and third.ok
    assert len(parses) == 1
    assert [h.stale for h in calendars.health()] == [False] and len(cached(db)) == 5


def test_an_unchanged_feed_is_still_read_once_a_day_so_a_weekly_series_keeps_freezing_180_days_ahead(
    db: Database, at_now: Clock
) -> None:
    with running(ValidatingCalendarServer()) as served:
        backend = served.backend
        assert isinstance(backend, ValidatingCalendarServer)
        backend.body = DELIVERIES.replace(";COUNT=4", "")  # every Thursday, for good
        calendars = feeds(db, at_now, served.url + SECRET_PATH)
        calendars.poll_due()
        furthest = max(r.starts_at for r in cached(db))
        at_now.advance(hours=23)
        [unchanged] = calendars.poll_due()  # a 304: nothing read
        assert not unchanged.changed and max(r.starts_at for r in cached(db)) == furthest
        at_now.advance(days=7)
        [reread] = calendars.poll_due()
    assert reread.changed and max(r.starts_at for r in cached(db)) == furthest + timedelta(weeks=1)
    assert backend.calls[-1].headers.get("if-none-match") is None  # asked for the whole feed, not a 304


EMPTY = "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//x//EN\r\nEND:VCALENDAR\r\n"


@pytest.fixture
def channel(db: Database, make_core: Callable[[Database], RunCore]) -> Iterator[tuple[Publisher, io.StringIO]]:
    """The real publisher and outbox, posting to a console that the test reads."""
    out = io.StringIO()
    publisher = Publisher(make_core(db), ConsoleSurface(out, SYDNEY), channel="#chaos", zone=SYDNEY)
    yield publisher, out
    publisher.close(deadline_seconds=0.5)


def test_a_feed_that_suddenly_reads_empty_is_told_in_the_channel_and_healthz_before_its_freezes_go(
    db: Database, at_now: Clock, server: RunningServer, channel: tuple[Publisher, io.StringIO]
) -> None:
    publisher, out = channel
    polls = CalendarPolls(feeds(db, at_now, server.url + SECRET_PATH), publisher)
    polls.poll()
    assert len(cached(db)) == 5 and out.getvalue() == ""
    backend = server.backend
    assert isinstance(backend, CalendarServer)
    backend.body = EMPTY
    at_now.advance(minutes=5)
    polls.poll()

    # Its freezes still hold, the channel is told once, and /healthz says it.
    assert len(cached(db)) == 5
    told = out.getvalue()
    assert told.count("has no events now") == 1
    assert "The calendar DELIVERIES_ICAL_URL has no events now; it held 5 freezes still to come." in told
    assert "dropped then if it still reads empty" in told
    status, report = web_health(db, None, polls.stale)
    assert status == 200 and report["calendars"] == "degraded"
    [sentence] = report["stale_calendars"]
    assert "DELIVERIES_ICAL_URL is degraded" in sentence and "has no events now" in sentence
    listed = str(listing_words([], SYDNEY, Freezes(db, policy_with(feed()), zone=SYDNEY, clock=at_now).feeds()))
    assert "The calendar DELIVERIES_ICAL_URL reads empty since" in listed and "Its 5 freezes hold" in listed

    # The next read agrees: the freezes go, without a second message.
    at_now.advance(minutes=5)
    polls.poll()
    assert cached(db) == [] and out.getvalue() == told
    assert web_health(db, None, polls.stale)[1]["calendars"] == "ok"


def test_a_feed_restored_before_the_next_read_keeps_its_freezes_and_is_fine_again(
    db: Database, at_now: Clock, server: RunningServer
) -> None:
    calendars = feeds(db, at_now, server.url + SECRET_PATH)
    calendars.poll_due()
    backend = server.backend
    assert isinstance(backend, CalendarServer)
    backend.body = EMPTY
    at_now.advance(minutes=5)
    [emptied] = calendars.poll_due()
    assert emptied.went_empty == 5 and len(cached(db)) == 5
    backend.body = DELIVERIES  # restored in time: nothing was lost, and the feed is fine again
    at_now.advance(minutes=5)
    [restored] = calendars.poll_due()
    assert restored.ok and not restored.went_empty and len(cached(db)) == 5
    assert calendars.attention() == []


def test_a_feed_whose_freezes_have_all_ended_reads_empty_without_an_alarm(
    db: Database, at_now: Clock, server: RunningServer, channel: tuple[Publisher, io.StringIO]
) -> None:
    publisher, out = channel
    polls = CalendarPolls(feeds(db, at_now, server.url + SECRET_PATH), publisher)
    polls.poll()
    backend = server.backend
    assert isinstance(backend, CalendarServer)
    backend.body = EMPTY  # the past deliveries cleared out of the calendar
    at_now.advance(days=40)  # every event of the feed is over
    polls.poll()
    assert cached(db) == [] and out.getvalue() == ""
    assert polls.stale() == []


def test_a_feed_with_one_broken_event_keeps_the_others_and_is_reported_degraded(
    db: Database, at_now: Clock, server: RunningServer, channel: tuple[Publisher, io.StringIO]
) -> None:
    backend = server.backend
    assert isinstance(backend, CalendarServer)
    broken = "BEGIN:VEVENT\r\nUID:broken@example.org\r\nSUMMARY:No start\r\nEND:VEVENT\r\n"
    backend.body = DELIVERIES.replace("END:VCALENDAR", broken + "END:VCALENDAR")
    calendars = feeds(db, at_now, server.url + SECRET_PATH)
    [result] = calendars.poll_due()
    assert result.ok and result.freezes == 5 and result.warning is not None and "DTSTART" in result.warning
    [health] = calendars.attention()
    assert not health.stale and "is degraded" in health.sentence() and "DTSTART" in health.sentence()
    status, report = web_health(db, None, CalendarPolls(calendars, channel[0]).stale)
    assert status == 200 and report["calendars"] == "degraded"
    assert "1 x event without a readable DTSTART or DTEND" in report["stale_calendars"][0]


def test_freeze_list_says_what_a_degraded_feed_skipped_and_which_feed_is_not_read(
    db: Database, at_now: Clock, server: RunningServer
) -> None:
    backend = server.backend
    assert isinstance(backend, CalendarServer)
    broken = "BEGIN:VEVENT\r\nUID:broken@example.org\r\nSUMMARY:No start\r\nEND:VEVENT\r\n"
    backend.body = DELIVERIES.replace("END:VCALENDAR", broken + broken + "END:VCALENDAR")
    deliveries, down = feed(), FreezeCalendar(url=closed_port_url() + "/outage.ics", name="releases")
    environ = {"DELIVERIES_ICAL_URL": server.url + SECRET_PATH}
    CalendarFeeds(db, [deliveries, down], zone=SYDNEY, clock=at_now, environ=environ).poll_due()
    policy = load_policy().model_copy(update={"freeze_calendars": [deliveries, down]})
    freezes = Freezes(db, policy, zone=SYDNEY, clock=at_now)

    listed = str(listing_words(freezes.upcoming(), SYDNEY, freezes.feeds()))
    assert listed.count("ACME go-live") == 1 and listed.count("Weekly client release") == 4
    assert (
        "⚠ The calendar DELIVERIES_ICAL_URL was read at Wed 02 Dec 2026 14:00 AEDT with parts left out: "
        "2 x event without a readable DTSTART or DTEND. The 5 freezes it could read hold."
    ) in listed
    assert "⚠ The calendar releases could not be read (could not connect (ConnectError)); last read never." in listed
    assert closed_port_url() not in listed


@contextmanager
def serving_bytes(body: bytes, content_type: str) -> Iterator[str]:
    """A feed served byte for byte with the given Content-Type (the shared fake sends text as UTF-8)."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # http.server's naming
            self.send_response(200)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}{SECRET_PATH}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def test_a_feed_is_read_in_the_charset_its_response_names(db: Database, at_now: Clock) -> None:
    # Not UTF-8, and not the Western European fallback either: only the named charset reads it right.
    body = DELIVERIES.replace("ACME go-live", "Выпуск для клиента").encode("windows-1251")
    with serving_bytes(body, "text/calendar; charset=windows-1251") as url:
        [result] = feeds(db, at_now, url).poll_due()
    assert result.ok and "Выпуск для клиента" in [r.reason for r in cached(db)]
