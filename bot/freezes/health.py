"""How each calendar feed is doing, read from its row: fresh, stale (its last known freezes hold), degraded
(parts skipped or cut, the rest freeze) or gone empty (its freezes hold until the next read agrees).

One reading for everyone who asks: the logs and ``/healthz`` (``CalendarFeeds.attention``) and
``/chaos freeze list`` (``Freezes.feeds``), so what each says cannot drift apart.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import select

from bot.freezes.config import FreezeCalendar
from bot.freezes.models import FreezeFeed
from bot.vocabulary import format_local
from bot.words import Words
from storage.db import Database


@dataclass(frozen=True)
class FeedHealth:
    label: str
    last_success_at: datetime | None
    last_attempt_at: datetime | None
    last_error: str | None
    freezes: int
    stale: bool
    warning: str | None = None  # read, but degraded: what was skipped or cut, or a feed that went empty
    empty_since: datetime | None = None  # read empty after holding freezes: they hold until the next read

    @property
    def needs_attention(self) -> bool:
        return self.stale or self.warning is not None

    def sentence(self) -> str:
        """``calendar DELIVERIES_ICAL_URL is stale: last read …, last error: HTTP 500`` (no URL)."""
        read = self.last_success_at.isoformat(timespec="seconds") if self.last_success_at else "never"
        state = "is stale" if self.stale else ("is degraded" if self.warning else "is fresh")
        error = f", last error: {self.last_error}" if self.last_error else ""
        warning = f", {self.warning}" if self.warning else ""
        return f"calendar {self.label} {state}: last read {read} ({self.freezes} freezes kept){error}{warning}"

    def words(self, zone: ZoneInfo) -> Words:
        """What a person reads under ``/chaos freeze list`` about a feed that needs attention."""
        read = format_local(self.last_success_at, zone) if self.last_success_at else "never"
        if self.stale:
            if self.last_error:
                problem = f"could not be read ({self.last_error}); last read {read}"
            else:
                problem = f"has not been read since {read}" if self.last_success_at else "has not been read yet"
            return Words.of(f"The calendar {self.label} {problem}. Its last known freezes ({self.freezes}) still hold.")
        if self.empty_since is not None:
            return Words.of(
                f"The calendar {self.label} reads empty since {format_local(self.empty_since, zone)}. "
                f"Its {self.freezes} freezes hold until its next read, and are dropped then if it is still empty."
            )
        return Words.of(
            f"The calendar {self.label} was read at {read} with parts left out: {self.warning}. "
            f"The {self.freezes} freezes it could read hold."
        )


def feed_health(db: Database, calendars: Sequence[FreezeCalendar], now: datetime) -> list[FeedHealth]:
    """Each calendar's health, in the policy's order; a feed never read yet is stale."""
    if not calendars:
        return []
    with db.transaction() as session:
        rows = {
            feed.key: feed
            for feed in session.scalars(select(FreezeFeed).where(FreezeFeed.key.in_([c.key for c in calendars])))
        }
    report = []
    for calendar in calendars:
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
                warning=feed.warning,
                empty_since=feed.empty_since,
            )
        )
    return report
