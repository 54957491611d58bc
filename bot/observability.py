"""Metrics (Prometheus), shared by every entry point. Logs are in ``bot.logs``."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import TYPE_CHECKING

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

if TYPE_CHECKING:
    from storage.db import Database

REQUESTS = Counter("chaosbot_requests_total", "Slack requests handled", ["kind", "outcome"])
ACK_SECONDS = Histogram(
    "chaosbot_ack_seconds",
    "Time from a Slack request arriving to its HTTP response (the ack)",
    buckets=(0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 3.0),
)
REVERTS = Counter("chaosbot_reverts_total", "Faults reverted", ["adapter"])
REVERT_FAILURES = Counter("chaosbot_revert_failures_total", "Reverts that failed after every retry", ["adapter"])
SLACK_API_ERRORS = Counter("chaosbot_slack_api_errors_total", "Slack Web API calls that failed", ["method", "error"])
SLACK_API_RETRIES = Counter("chaosbot_slack_api_retries_total", "Slack Web API calls retried", ["reason"])


class RunsByState(Collector):
    """Runs per state, counted at scrape time so every replica reports the shared truth.

    When the database does not answer there is no sample at all (never a misleading zero), and
    ``chaosbot_runs_count_ok`` is 0 so an alert can tell "no runs" from "cannot count".
    """

    def __init__(self, db: Database) -> None:
        self.db = db

    def collect(self) -> Iterable[Metric]:
        from sqlalchemy import func, select

        from bot.runs.models import Run

        runs = GaugeMetricFamily("chaosbot_runs", "Runs by state", labels=["state"])
        ok = GaugeMetricFamily("chaosbot_runs_count_ok", "1 when chaosbot_runs could be counted, 0 when not")
        try:
            with self.db.engine.connect() as connection:
                rows = connection.execute(select(Run.state, func.count()).group_by(Run.state)).all()
        except Exception:
            logging.getLogger(__name__).warning("could not count runs for /metrics", exc_info=True)
            ok.add_metric([], 0)
            yield ok
            return
        for state, count in rows:
            runs.add_metric([state], count)
        ok.add_metric([], 1)
        yield runs
        yield ok


class _ProcessMetrics(Collector):
    """The process-wide counters and histograms (registered once, at import, in prometheus_client's REGISTRY)."""

    def collect(self) -> Iterable[Metric]:
        return REGISTRY.collect()


def metrics_registry(db: Database) -> CollectorRegistry:
    """A registry per web app: this process's metrics plus the run counts of ``db``. Safe to build many times."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_ProcessMetrics())
    registry.register(RunsByState(db))
    return registry
