"""Everything a running bot needs, composed once: core, engine, publisher, handlers, background jobs.

``serve`` (Slack) and ``shell`` (console) build the same runtime around a different Surface.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from apscheduler.schedulers.background import BackgroundScheduler

from bot.context import AppContext, build_context
from bot.engine import RunEngine, build_coordination
from bot.interface.handlers import Handlers
from bot.interface.publisher import Publisher
from bot.interface.surface import Background, Surface
from bot.policy.models import GroupMembers, no_groups
from bot.settings import Settings
from storage.dedup import RequestLedger

log = logging.getLogger(__name__)


@dataclass
class Runtime:
    context: AppContext
    engine: RunEngine
    publisher: Publisher
    handlers: Handlers
    ledger: RequestLedger
    redis: Any | None
    scheduler: BackgroundScheduler | None = None

    def start_jobs(self) -> None:
        """Periodic safety work. Every job is safe to run on several replicas at once."""
        scheduler = BackgroundScheduler(timezone="UTC", job_defaults={"coalesce": True, "max_instances": 1})
        scheduler.add_job(self.recover_orphans, "interval", seconds=5, id="dead-mans-switch")
        scheduler.add_job(self.expire_plans, "interval", seconds=60, id="expire-plans")
        scheduler.add_job(self.ledger.forget_old, "interval", minutes=10, id="forget-deliveries")
        scheduler.start()
        self.scheduler = scheduler

    def recover_orphans(self) -> list[int]:
        try:
            return self.engine.recover_orphans()
        except Exception:
            log.exception("dead man's switch sweep failed; it runs again in a few seconds")
            return []

    def expire_plans(self) -> None:
        for run in self.context.lifecycle.expire_overdue():
            self.publisher.run_changed(run.id)
            self.publisher.timeline(run.id, f"{run.label} expired: its window passed without a start.")

    def close(self) -> None:
        if self.scheduler is not None:
            self.scheduler.shutdown(wait=False)
        self.engine.close()
        self.context.db.dispose()


def redis_client(url: str | None) -> Any | None:
    if not url:
        return None
    import redis

    return redis.Redis.from_url(url, socket_timeout=1.0, socket_connect_timeout=1.0, health_check_interval=30)


def build_runtime(
    settings: Settings,
    surface: Surface,
    *,
    members_of: GroupMembers = no_groups,
) -> Runtime:
    context = build_context(settings, members_of=members_of)
    publisher = Publisher(context.lifecycle, surface, channel=settings.channel, zone=settings.zone)
    redis = redis_client(settings.redis_url)
    engine = RunEngine(context.lifecycle, publisher, build_coordination(settings.redis_url, context.db))
    handlers = Handlers(context.lifecycle, engine, surface, publisher)
    return Runtime(context, engine, publisher, handlers, RequestLedger(context.db, redis), redis)


@dataclass(frozen=True)
class Pools:
    """Where work after the ack runs. The kill switch has its own pool so it never queues behind other work."""

    work: Background
    urgent: Background


def _pool(size: int, name: str) -> Background:
    pool = ThreadPoolExecutor(max_workers=size, thread_name_prefix=name)

    def submit(work: Callable[[], None]) -> None:
        def run() -> None:
            try:
                work()
            except Exception:
                log.exception("background task failed")

        pool.submit(run)

    return submit


def worker_pools(work: int = 4, urgent: int = 16) -> Pools:
    """Small pools on purpose: request threads share the interpreter with this work, so a big pool
    slows every ack under a burst; aborts get their own threads and never wait for it."""
    return Pools(work=_pool(work, "chaosbot-work"), urgent=_pool(urgent, "chaosbot-urgent"))
