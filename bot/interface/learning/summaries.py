"""Monthly and quarterly summaries in the channel: ``/chaos report [YYYY-MM | YYYY-Qn]`` on demand, and the
scheduled posts on the first working day (``post_due``, every minute on every replica, each claimed once).

The figures come from ``bot.reports`` (computed in SQL); here they become blocks, a quarter's trend chart is
uploaded into the summary's thread, and each run is linked to its thread (links fetched after the summary's
transaction, never inside it).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from bot import chart_process
from bot.interface.conversation import Conversation
from bot.interface.kit import Message
from bot.interface.learning.messages import summary_message
from bot.interface.render import Renderer
from bot.interface.surface import DeliveryFailed, Request
from bot.reports import chart
from bot.reports.flows import Reports, record_posted
from bot.reports.periods import Period
from bot.reports.schedule import DueSummary
from bot.reports.summary import Summary
from bot.retro.flows import RetroPoster
from bot.schedule import firings
from storage.db import Database, utcnow

log = logging.getLogger(__name__)

RUNS_LISTED = 50
SUMMARY_LEASE = timedelta(minutes=5)
Link = Callable[[int], str | None]


class Summaries:
    """Posts summaries through an outlet (Slack's Web API, or the console) that can also upload a chart."""

    def __init__(
        self,
        db: Database,
        reports: Reports,
        *,
        outlet: RetroPoster[Message],
        render: Renderer,
        zone: ZoneInfo,
        channel: str,
        holder: str,
        link: Link = lambda _run_id: None,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.db = db
        self.reports = reports
        self.outlet = outlet
        self.render = render
        self.zone = zone
        self.channel = reports.reporting.channel or channel
        self.holder = holder
        self.link = link
        self.clock = clock

    def summary(self, period: Period) -> Summary:
        """The summary with each listed run linked to its thread (links fetched outside the transaction)."""
        found = self.reports.summary(period, runs_limit=RUNS_LISTED)
        return replace(found, runs=[replace(line, link=self.link(line.run_id)) for line in found.runs])

    def post(self, channel: str, period: Period) -> tuple[str, str]:
        """Post the summary of ``period`` in ``channel``; a quarter's trend chart goes in its thread."""
        summary = self.summary(period)
        where, ts = self.outlet.post(channel, summary_message(summary, self.zone, self.render))
        if summary.trend and not self._attach_trend(summary, period, where, ts):
            self.outlet.post(where, Message(text="The trend chart could not be attached."), thread_ts=ts)
        return where, ts

    def _attach_trend(self, summary: Summary, period: Period, where: str, ts: str) -> bool:
        try:
            trend = chart_process.draw(chart.draw, summary)
        except Exception:  # a drawing that fails must not cost the summary its thread's explanation
            log.exception("could not draw the trend chart of %s", period.label)
            return False
        return self.outlet.upload(
            where,
            ts,
            trend.png,
            filename=f"chaos-{period.label}-trend.png",
            title=f"Chaos experiments, {period.title}: the quarter's trend",
            alt_text=f"Runs by outcome, hypotheses refuted and action items opened per month of {period.title}",
        )

    def post_due(self) -> list[str]:
        """Post the scheduled summaries that are due (every minute, every replica); the keys this one posted."""
        posted = []
        for due in self.reports.due():
            try:
                if firings.once(
                    self.db,
                    kind=due.kind,
                    key=due.key,
                    due_at=due.due_at,
                    holder=self.holder,
                    lease=SUMMARY_LEASE,
                    now=self.clock(),
                    action=lambda due=due: self._post_scheduled(due),  # type: ignore[misc]  # bound per loop turn
                ):
                    posted.append(due.key)
            except Exception:
                log.exception("could not post the %s summary %s; it is tried again after a back-off", due.kind, due.key)
        return posted

    def _post_scheduled(self, due: DueSummary) -> None:
        channel, ts = self.post(self.channel, due.period)
        with self.db.transaction() as session:
            record_posted(session, period=due.period, channel=channel, message_ts=ts, at=self.clock())


class ReportCommand:
    """``/chaos report [YYYY-MM | YYYY-Qn]``: the summary, posted where it was asked for."""

    def __init__(self, talk: Conversation, summaries: Summaries) -> None:
        self.talk = talk
        self.summaries = summaries

    def __call__(self, request: Request, args: list[str]) -> None:
        period = self.summaries.reports.period(" ".join(args) or None)
        channel = request.channel or self.summaries.channel
        try:
            self.summaries.post(channel, period)
        except DeliveryFailed as exc:  # not invited to that channel: the person still gets the figures
            log.info("could not post the %s summary in %s: %s", period.label, channel, exc.reason)
            summary = self.summaries.summary(period)
            self.talk.reply(request, summary_message(summary, self.summaries.zone, self.talk.say))
