"""After the run, composed once for ``serve`` and ``shell``: retrospectives, action items and the backlog,
summaries, and the dashboards' fault-window marker. Its buttons, commands and forms are routed in
``bot.interface.routes``.

Periodic jobs (``jobs``), safe on every replica: the retrospective sweep, filing pending action items,
the scheduled summaries (each claimed once through ``bot.schedule.firings``), and the dashboards' missed
fault-window ends (sending one twice only sets the same end again).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from bot.actions.flows import ActionItems
from bot.backlog.registry import backlog_for
from bot.context import AppContext
from bot.dashboards.grafana import GrafanaAnnotations
from bot.dashboards.marker import NO_MARKER, FaultWindowMarker
from bot.interface.learning.retrospectives import Outlet, Retrospectives, ThreadLinks
from bot.interface.learning.summaries import Summaries
from bot.interface.render import Renderer
from bot.interface.service import RunMessages
from bot.jobs import Job
from bot.reports.flows import Reports
from bot.settings import Settings
from storage.db import utcnow

log = logging.getLogger(__name__)


@dataclass
class Learning:
    retrospectives: Retrospectives
    items: ActionItems
    summaries: Summaries
    links: ThreadLinks
    marker: FaultWindowMarker

    def jobs(self, settings: Settings) -> list[Job]:
        return [
            Job(self.sweep, settings.retro_sweep_seconds, "retrospective-sweep"),
            Job(self.file_pending, settings.backlog_filing_seconds, "file-action-items"),
            Job(self.post_summaries, settings.summary_check_seconds, "post-summaries"),
            Job(self.marker.resend_ends, settings.dashboard_resend_seconds, "dashboard-ends"),
        ]

    def sweep(self) -> None:
        self.retrospectives.sweep()

    def file_pending(self) -> None:
        try:
            self.items.file_pending()
        except Exception:
            log.exception("filing pending action items failed; it runs again shortly")

    def post_summaries(self) -> None:
        self.summaries.post_due()

    def close(self) -> None:
        """Let a retrospective under way finish, then the dashboards' queued calls."""
        self.retrospectives.close()
        self.marker.close()


def build_learning(
    context: AppContext,
    *,
    outlet: Outlet,
    render: Renderer,
    channel: str,
    holder: str,
    clock: Callable[[], datetime] = utcnow,
) -> Learning:
    settings, db, policy = context.settings, context.db, context.policy
    links = ThreadLinks(RunMessages(db), outlet)
    items = ActionItems(db, backlog=backlog_for(policy.backlog), zone=settings.zone, clock=clock, link_for=links.cached)
    reports = Reports(
        db,
        experiments=[experiment.id for experiment in context.catalogue.experiments],
        reporting=policy.reporting,
        zone=settings.zone,
        clock=clock,
    )
    summaries = Summaries(
        db,
        reports,
        outlet=outlet,
        render=render,
        zone=settings.zone,
        channel=channel,
        holder=holder,
        link=links.get,
        clock=clock,
    )
    retrospectives = Retrospectives(
        db, outlet=outlet, render=render, zone=settings.zone, channel=channel, holder=holder, clock=clock
    )
    marker: FaultWindowMarker = GrafanaAnnotations.from_env(db) or NO_MARKER
    return Learning(retrospectives, items, summaries, links, marker)
