"""Everything a running bot needs, composed once: core, engine, publisher, handlers, worker pools, background jobs.

``serve`` (Slack) and ``shell`` (console) build the same runtime around a different Surface. The runtime owns
every thread and connection it builds, and ``close`` stops them in a stated order (see ``Runtime.close``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from apscheduler.schedulers.background import BackgroundScheduler  # type: ignore[import-untyped]  # APScheduler 3 ships no type hints

from bot.context import AppContext, build_context
from bot.engine import Coordination, RunEngine, build_coordination
from bot.engine.coordination import connect_redis
from bot.interface.handlers import Handlers
from bot.interface.publisher import Publisher
from bot.interface.surface import Background, Surface
from bot.policy.models import GroupMembers, no_groups
from bot.settings import Settings
from bot.words import Words
from storage.dedup import RequestLedger

log = logging.getLogger(__name__)

POOL_SHUTDOWN_SECONDS = 5.0


class _Pool:
    """A thread pool whose tasks log their own failures; ``submit`` is a ``Background``."""

    def __init__(self, size: int, name: str) -> None:
        self._executor = ThreadPoolExecutor(max_workers=size, thread_name_prefix=name)

    def submit(self, work: Callable[[], None]) -> None:
        def run() -> None:
            try:
                work()
            except Exception:
                log.exception("background task failed")

        self._executor.submit(run)

    def close(self) -> None:
        """Finish what is queued (it may be an abort's record), refuse new work."""
        self._executor.shutdown(wait=True, cancel_futures=False)


@dataclass(frozen=True)
class Pools:
    """Where work after the ack runs. The kill switch has its own pool so it never queues behind other work."""

    work: Background
    urgent: Background
    _owned: tuple[_Pool, ...] = ()

    def close(self) -> None:
        for pool in self._owned:
            pool.close()


def worker_pools(work: int = 4, urgent: int = 16) -> Pools:
    """Small pools on purpose: request threads share the interpreter with this work, so a big pool
    slows every ack under a burst; aborts get their own threads and never wait for it."""
    work_pool, urgent_pool = _Pool(work, "chaosbot-work"), _Pool(urgent, "chaosbot-urgent")
    return Pools(work=work_pool.submit, urgent=urgent_pool.submit, _owned=(work_pool, urgent_pool))


@dataclass
class Runtime:
    context: AppContext
    engine: RunEngine
    publisher: Publisher
    handlers: Handlers
    ledger: RequestLedger
    redis: Any | None
    coordination: Coordination
    pools: Pools = field(default_factory=worker_pools)
    scheduler: BackgroundScheduler | None = None

    def start_jobs(self) -> None:
        """Periodic safety work. Every job is safe to run on several replicas at once."""
        scheduler = BackgroundScheduler(timezone="UTC", job_defaults={"coalesce": True, "max_instances": 1})
        self.heartbeat()
        scheduler.add_job(self.heartbeat, "interval", seconds=5, id="replica-heartbeat")
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

    def heartbeat(self) -> None:
        try:
            self.engine.heartbeat()
        except Exception:
            log.warning("replica heartbeat failed; it is tried again in a few seconds", exc_info=True)

    def expire_plans(self) -> None:
        for run in self.context.lifecycle.expire_overdue():
            self.publisher.run_changed(run.id)
            self.publisher.timeline(run.id, Words.of(f"{run.label} expired: its window passed without a start."))

    def shut_down(self, handover_seconds: float | None = None) -> None:
        """SIGTERM: stop the periodic jobs, refuse new starts, let queued work finish, then hand each run over
        to another replica or revert and abort it (``RunEngine.shut_down``), then ``close``."""
        if self.scheduler is not None:
            self.scheduler.shutdown(wait=True)
            self.scheduler = None
        seconds = self.context.settings.handover_seconds if handover_seconds is None else handover_seconds
        self.engine.drain()
        self.pools.close()  # a start already under way finishes, so its run is handed over or reverted too
        self.engine.shut_down(handover_seconds=seconds)
        self.close()

    def close(self) -> None:
        """Stop everything, in this order: the scheduler (no new jobs), the engine (watchers, renewals, leases;
        its pending records drained with a deadline), the worker pools (queued work finishes), the role
        snapshot refresher, coordination, Redis, and last the database (everything before may still write)."""
        if self.scheduler is not None:
            self.scheduler.shutdown(wait=True)
        self.engine.close()
        self.pools.close()
        self.context.roles.close()
        self.coordination.close()
        if self.redis is not None:
            self.redis.close()
        self.context.db.dispose()


def build_runtime(
    settings: Settings,
    surface: Surface,
    *,
    members_of: GroupMembers = no_groups,
) -> Runtime:
    context = build_context(settings, members_of=members_of)
    context.roles.start()
    publisher = Publisher(context.lifecycle, surface, channel=settings.channel, zone=settings.zone)
    redis = connect_redis(settings.redis_url) if settings.redis_url else None
    coordination = build_coordination(redis, context.db)
    engine = RunEngine(context.lifecycle, publisher, coordination, spool_dir=settings.spool_dir)
    handlers = Handlers(context.lifecycle, engine, surface, publisher)
    ledger = RequestLedger(context.db, redis)
    return Runtime(context, engine, publisher, handlers, ledger, redis, coordination)
