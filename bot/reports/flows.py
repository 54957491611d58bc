"""The front door for summaries: what ``/chaos report``, ``chaosbot report`` and the scheduler call.

``Reports`` reads (one transaction per summary) and renders; posting is the interface's job. After posting
a scheduled summary, the caller records it with ``record_posted`` in the transaction that completes its
firing, so the audit chain shows every summary posted.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from zoneinfo import ZoneInfo

from sqlalchemy.orm import Session

from bot.audit.service import append
from bot.reports.config import Reporting
from bot.reports.formats import NameOf, render
from bot.reports.periods import Period, PeriodKind, parse_period
from bot.reports.schedule import DueSummary, due_summaries
from bot.reports.summary import LinkFor, Summary, summarise
from bot.words import SYSTEM_ACTOR
from storage.db import Database, utcnow

POSTED = "summary.posted"


class Reports:
    def __init__(
        self,
        database: Database,
        *,
        experiments: Sequence[str],
        reporting: Reporting,
        zone: ZoneInfo,
        clock: Callable[[], datetime] = utcnow,
        link_for: LinkFor | None = None,
    ) -> None:
        self.database = database
        self.experiments = list(experiments)
        self.reporting = reporting
        self.zone = zone
        self.clock = clock
        self.link_for = link_for

    def period(self, text: str | None) -> Period:
        """``YYYY-MM`` or ``YYYY-Qn`` as typed; the current month when nothing was typed."""
        if text is None or not text.strip():
            return Period.containing(self.clock(), self.zone, PeriodKind.MONTH)
        return parse_period(text)

    def summary(self, period: Period, *, runs_limit: int | None = None) -> Summary:
        with self.database.transaction() as session:
            return summarise(
                session,
                period,
                experiments=self.experiments,
                zone=self.zone,
                now=self.clock(),
                link_for=self.link_for,
                runs_limit=runs_limit,
            )

    def text(self, period: Period, fmt: str = "md", *, name_of: NameOf = str) -> str:
        """The summary rendered as ``md``, ``csv`` or ``json`` (what ``chaosbot report`` prints)."""
        return render(self.summary(period), fmt, zone=self.zone, name_of=name_of)

    def due(self) -> list[DueSummary]:
        """The scheduled summaries due now: claim each ``key`` once (firings), post, then ``record_posted``."""
        return due_summaries(self.clock(), self.reporting, self.zone)


def record_posted(session: Session, *, period: Period, channel: str, message_ts: str | None, at: datetime) -> None:
    """Append ``summary.posted`` to the audit chain, in the caller's transaction."""
    append(
        session,
        actor=SYSTEM_ACTOR,
        action=POSTED,
        payload={"period": period.label, "kind": period.kind.value, "channel": channel, "ts": message_ts},
        at=at,
    )
