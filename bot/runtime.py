"""Everything a running bot needs, composed once: core, engine, publisher, handlers, worker pools, background jobs.

``serve`` (Slack) and ``shell`` (console) build the same runtime around a different Surface. The runtime owns
every thread and connection it builds, and ``close`` stops them in a stated order (see ``Runtime.close``).
"""

from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from apscheduler.schedulers.background import BackgroundScheduler  # type: ignore[import-untyped]  # APScheduler 3 ships no type hints

from bot.alerting.alertmanager import Alertmanager
from bot.alerting.silences import RunSilences
from bot.context import AppContext, build_context
from bot.engine import Coordination, RunEngine, build_coordination
from bot.engine.coordination import connect_redis
from bot.interface.alarms.desk import AlarmDesk
from bot.interface.conversation import Conversation
from bot.interface.handlers import Handlers
from bot.interface.learning.desk import Learning, build_learning
from bot.interface.learning.retrospectives import Outlet, SurfaceRetroOutlet
from bot.interface.outbox import Outbox
from bot.interface.publisher import Publisher
from bot.interface.schedule.firings import StartSchedule, build_schedule
from bot.interface.surface import Surface
from bot.policy.models import GroupMembers, no_groups
from bot.pools import Pools, worker_pools
from bot.safety.alarms import RevertAlarms
from bot.schedule.firings import Backoff
from bot.settings import Settings
from bot.words import Words
from storage.db import process_identity, utcnow
from storage.dedup import RequestLedger

log = logging.getLogger(__name__)

POOL_SHUTDOWN_SECONDS = 5.0


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
    learning: Learning | None = None  # after the run: retrospectives, action items, summaries (issue 9)
    schedule: StartSchedule | None = None  # before the run: notices, automatic starts, calendar polls (issue 8)
    alarms: AlarmDesk | None = None  # revert-failure alerts repeated until acknowledged (issue 10)
    silences: RunSilences | None = None  # Alertmanager silences of running runs, lifted with their reverts

    def start_jobs(self) -> None:
        """Periodic work of a serving replica. Every job is safe to run on several replicas at once."""
        self.heartbeat()
        self._start_scheduler(replica=True)

    def start_schedule(self) -> None:
        """``chaosbot shell``: one process and no replicas to watch, but the same firings, calendar polls,
        retrospective sweeps, backlog filing, summaries and alarm reminders as a serving replica."""
        if self.scheduler is None:
            self._start_scheduler(replica=False)

    def _start_scheduler(self, *, replica: bool) -> None:
        scheduler = BackgroundScheduler(timezone="UTC", job_defaults={"coalesce": True, "max_instances": 1})
        every = self.context.settings  # each interval is a setting (CHAOSBOT_..._SECONDS)
        if replica:
            scheduler.add_job(self.heartbeat, "interval", seconds=every.heartbeat_seconds, id="replica-heartbeat")
            scheduler.add_job(
                self.recover_orphans, "interval", seconds=every.dead_mans_switch_seconds, id="dead-mans-switch"
            )
            scheduler.add_job(self.expire_plans, "interval", seconds=every.plan_expiry_check_seconds, id="expire-plans")
            scheduler.add_job(self.ledger.forget_old, "interval", minutes=10, id="forget-deliveries")
        for job in self.learning.jobs(every) if self.learning is not None else []:
            scheduler.add_job(job.run, "interval", seconds=job.seconds, id=job.id)
        for timed in self.schedule.jobs(every) if self.schedule is not None else []:
            scheduler.add_job(timed.run, "interval", seconds=timed.seconds, id=timed.id, next_run_time=utcnow())
        if self.alarms is not None:
            scheduler.add_job(self.alarms.remind, "interval", seconds=every.alarm_check_seconds, id="revert-alarms")
        if self.silences is not None:
            scheduler.add_job(
                self.silences.retry_lifts, "interval", seconds=every.silence_retry_seconds, id="silence-lifts"
            )
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
        for run in self.context.core.transitions.expire_overdue():
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
        if self.silences is not None:
            self.silences.close()  # after the engine: its last reverts queued their lifts
        if self.learning is not None:
            self.learning.close()
        self.publisher.close()  # messages still waiting for Slack get a last chance
        self.context.roles.close()
        if self.schedule is not None:
            self.schedule.feeds.stop_hiding_urls()  # no poll runs any more: the scheduler stopped first
        self.coordination.close()
        if self.redis is not None:
            self.redis.close()
        self.context.db.dispose()


def run_silences(context: AppContext) -> RunSilences:
    """The policy's Alertmanager for run silences, or none (an experiment listing silences then cannot start)."""
    config = context.policy.alertmanager
    return RunSilences(context.db, Alertmanager(config.url) if config is not None else None)


def build_runtime(
    settings: Settings,
    surface: Surface,
    *,
    members_of: GroupMembers = no_groups,
    outlet: Outlet | None = None,
) -> Runtime:
    """``outlet``: where retrospectives and summaries are posted with their charts (Slack's upload flow);
    by default the surface itself, with charts written under ``charts/`` beside the spool."""
    context = build_context(settings, members_of=members_of)
    # Each step's resource is stopped again if a later step raises: a failed start leaves no thread behind.
    with contextlib.ExitStack() as started:
        started.callback(context.db.dispose)
        context.roles.start()
        started.callback(context.roles.close)
        holder = process_identity()  # the one name this process claims firings, leases and first posts under
        redis = connect_redis(settings.redis_url) if settings.redis_url else None
        if redis is not None:
            started.callback(redis.close)
        coordination = build_coordination(redis, context.db)
        started.callback(coordination.close)
        publisher = Publisher(
            context.core,
            surface,
            channel=settings.channel,
            zone=settings.zone,
            holder=holder,
            outbox=Outbox(first_backoff=settings.outbox_backoff_seconds),
        )
        started.callback(publisher.close)
        learning = build_learning(
            context,
            outlet=outlet or SurfaceRetroOutlet(surface, settings.spool_dir.parent / "charts"),
            render=surface.renderer,
            channel=settings.channel,
            holder=holder,
        )
        started.callback(learning.close)
        silences = run_silences(context)
        started.callback(silences.close)
        engine = RunEngine(
            context.core,
            publisher,
            coordination,
            spool_dir=settings.spool_dir,
            holder=holder,
            on_ended=learning.retrospectives.ended,
            marker=learning.marker,
            silences=silences,
            lease_ttl=timedelta(seconds=settings.lease_seconds),
            lease_renewal=timedelta(seconds=settings.lease_renew_seconds),
            replica_ttl=timedelta(seconds=3 * settings.heartbeat_seconds),  # the registry entry lasts three beats
            announce_timeout=settings.announce_timeout_seconds,
        )
        started.callback(engine.close)
        talk = Conversation(context.core, engine, surface, publisher)
        repeat = timedelta(seconds=settings.alert_repeat_seconds)
        alarms = AlarmDesk(talk, RevertAlarms(context.db, repeat_every=repeat))
        handlers = Handlers(talk, learning=learning, alarms=alarms)
        ledger = RequestLedger(context.db, redis)
        retry = Backoff(first=timedelta(seconds=settings.firing_retry_seconds))
        schedule = build_schedule(talk, context.db, context.policy, holder=holder, backoff=retry)
        schedule.feeds.hide_urls_in_logs()  # removed again by close()
        started.callback(schedule.feeds.stop_hiding_urls)
        runtime = Runtime(
            context,
            engine,
            publisher,
            handlers,
            ledger,
            redis,
            coordination,
            learning=learning,
            schedule=schedule,
            alarms=alarms,
            silences=silences,
            pools=worker_pools(quiet_gap=settings.quiet_gap_seconds),
        )
        started.pop_all()  # from here on the runtime owns them: Runtime.close stops them
    return runtime
