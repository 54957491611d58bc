"""Time a calendar feed poll: a 5,000-event feed read and stored, then polled again unchanged.

Serves a generated feed (``--events`` single events a few hours apart, plus a weekly series) from a local HTTP
server on 127.0.0.1 that honours ``If-None-Match``, and times ``CalendarFeeds.refresh`` on a scratch SQLite
file (or a scratch PostgreSQL database with ``--database postgres``):

- **first read**: fetch, parse and store every freeze (target: under 2 s for 5,000 events);
- **304**: the server answers Not Modified to the feed's ETag (target: under 50 ms);
- **same body**: the server sends the same bytes with a new ETag, so the body's hash decides (under 50 ms).

    .venv/bin/python bench/calendar_feed.py [--database sqlite|postgres] [--events 5000] [--rounds 5]
        [--shape plain|exported]

``--shape exported`` gives each event what a Google or Outlook export carries besides its times and title
(description, organiser, attendees, an alarm, stamps), as the real 4,778-event feed of issue 16 did.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from zoneinfo import ZoneInfo

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bot.freezes.calendar import CalendarFeeds
from bot.freezes.config import FreezeCalendar
from storage.db import Database
from storage.migrate import upgrade

NOW = datetime(2026, 12, 2, 3, tzinfo=UTC)
ZONE = ZoneInfo("Australia/Sydney")
TARGETS = {"first read": 2.0, "304": 0.05, "same body": 0.05}


# What a Google or Outlook export carries in each event besides its times and title (none of it freezes).
EXPORTED = [
    "DESCRIPTION:Release notes for the client\\, see the runbook at https://example.org/runbook and call the",
    "  on-call engineer if the smoke tests fail\\nSecond line of the notes",
    "ORGANIZER;CN=Rita Reliability:mailto:rita@example.org",
    "ATTENDEE;CUTYPE=INDIVIDUAL;ROLE=REQ-PARTICIPANT;PARTSTAT=ACCEPTED;CN=Oliver;X-NUM-GUESTS=0:mailto:oliver@example.org",
    "ATTENDEE;CUTYPE=INDIVIDUAL;ROLE=REQ-PARTICIPANT;PARTSTAT=NEEDS-ACTION;CN=Sam;X-NUM-GUESTS=0:mailto:sam@example.org",
    "CREATED:20261101T000000Z",
    "LAST-MODIFIED:20261101T000000Z",
    "LOCATION:",
    "SEQUENCE:0",
    "STATUS:CONFIRMED",
    "TRANSP:OPAQUE",
    "BEGIN:VALARM",
    "ACTION:DISPLAY",
    "DESCRIPTION:This is an event reminder",
    "TRIGGER:-P0DT0H10M0S",
    "END:VALARM",
]


def feed(events: int, shape: str = "plain") -> bytes:
    """``plain``: UID, DTSTAMP, times and title only; ``exported``: also what a real export carries."""
    lines = ["BEGIN:VCALENDAR", "VERSION:2.0", "PRODID:-//chaosbot bench//EN"]
    for i in range(events):
        start = NOW + timedelta(minutes=47 * i)
        lines += [
            "BEGIN:VEVENT",
            f"UID:release-{i}@bench",
            "DTSTAMP:20261201T000000Z",
            f"DTSTART:{start:%Y%m%dT%H%M%SZ}",
            f"DTEND:{start + timedelta(minutes=30):%Y%m%dT%H%M%SZ}",
            f"SUMMARY:Client release {i}",
            *(EXPORTED if shape == "exported" else []),
            "END:VEVENT",
        ]
    lines += ["BEGIN:VEVENT", "UID:weekly@bench", "DTSTART:20261203T070000Z", "DURATION:PT2H"]
    lines += ["RRULE:FREQ=WEEKLY", "SUMMARY:Weekly release train", "END:VEVENT", "END:VCALENDAR"]
    return "\r\n".join(lines).encode()


class Feed:
    def __init__(self, body: bytes) -> None:
        self.body, self.etag = body, '"1"'


@contextlib.contextmanager
def serving(state: Feed) -> Iterator[str]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # http.server's naming
            if self.headers.get("If-None-Match") == state.etag:
                self.send_response(304)
                self.end_headers()
                return
            self.send_response(200)
            self.send_header("Content-Type", "text/calendar; charset=utf-8")
            self.send_header("ETag", state.etag)
            self.send_header("Content-Length", str(len(state.body)))
            self.end_headers()
            self.wfile.write(state.body)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/feed.ics"
    finally:
        server.shutdown()
        server.server_close()


@contextlib.contextmanager
def database(kind: str) -> Iterator[Database]:
    if kind == "postgres":
        sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
        from tests.services import scratch_postgres_database

        with scratch_postgres_database() as url:
            upgrade(url)
            db = Database(url)
            yield db
            db.dispose()
        return
    with tempfile.TemporaryDirectory() as folder:
        url = f"sqlite:///{folder}/bench.db"
        upgrade(url)
        db = Database(url)
        yield db
        db.dispose()


def measure(kind: str, events: int, rounds: int, shape: str) -> tuple[dict[str, list[float]], dict[str, list[float]]]:
    """Wall-clock and CPU seconds (this process, every thread) of each poll, by kind of poll."""
    timings: dict[str, list[float]] = {name: [] for name in TARGETS}
    cpu: dict[str, list[float]] = {name: [] for name in TARGETS}
    state = Feed(feed(events, shape))
    for _ in range(rounds):
        with database(kind) as db, serving(state) as url:
            calendar = FreezeCalendar(url=url, poll="5m")
            feeds = CalendarFeeds(db, [calendar], zone=ZONE, clock=lambda: NOW)
            for name in TARGETS:
                if name == "same body":
                    state.etag = f'"{time.monotonic_ns()}"'
                began, began_cpu = time.perf_counter(), time.process_time()
                result = feeds.refresh(calendar)
                timings[name].append(time.perf_counter() - began)
                cpu[name].append(time.process_time() - began_cpu)
                assert result.ok, result.error
            state.etag = '"1"'
    return timings, cpu


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database", choices=("sqlite", "postgres"), default="sqlite")
    parser.add_argument("--events", type=int, default=5000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--shape", choices=("plain", "exported"), default="plain")
    args = parser.parse_args(argv)
    timings, cpu = measure(args.database, args.events, args.rounds, args.shape)
    load = " ".join(f"{value:.1f}" for value in os.getloadavg())
    print(f"| {args.database}, {args.events:,} {args.shape} events | median | max | CPU median | target |")
    print("|---|---|---|---|---|")
    met = True
    for name, values in timings.items():
        median, worst, spent = statistics.median(values), max(values), statistics.median(cpu[name])
        met &= median < TARGETS[name]
        print(
            f"| {name} | {median * 1000:.0f} ms | {worst * 1000:.0f} ms | {spent * 1000:.0f} ms "
            f"| < {TARGETS[name] * 1000:.0f} ms |"
        )
    print(f"(load average {load} on {os.cpu_count()} CPUs)")
    return 0 if met else 1


if __name__ == "__main__":
    raise SystemExit(main())
