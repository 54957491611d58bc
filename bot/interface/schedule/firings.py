"""What the scheduler's firings do in the channel: the notice, the automatic start, the missed firing; and
the freeze calendars' polls, with what they tell the channel.

``Firings`` is the ``FiringHandler`` of ``bot.schedule.service``. Each firing is claimed once across
replicas before it reaches here. What a firing says goes through the publisher's outbox, so a slow or absent
Slack never holds the scheduler's tick (it delivers in order once Slack is back). A start whose announcement
Slack could not take raises (the scheduler retries it until the plan expires); any other refused start is an
outcome, said in the run's thread and the channel, and not retried.
"""

from __future__ import annotations

import logging
from zoneinfo import ZoneInfo

from bot.engine.errors import InjectFailed, StartNotAnnounced
from bot.errors import DomainError, IllegalTransition
from bot.freezes.calendar import CalendarFeeds, went_empty_words
from bot.interface.conversation import Conversation
from bot.interface.kit import Message, notice
from bot.interface.metadata import StartRef
from bot.interface.publisher import Publisher
from bot.interface.schedule.messages import notice_message, refusal_message
from bot.jobs import Job
from bot.policy.models import Policy
from bot.runs.models import Run, RunState
from bot.schedule import messages
from bot.schedule.firings import DEFAULT_BACKOFF, Backoff
from bot.schedule.gate import StartRefused
from bot.schedule.service import Scheduler
from bot.settings import Settings
from bot.words import SYSTEM_ACTOR, Words
from storage.db import Database

log = logging.getLogger(__name__)


class Firings:
    def __init__(self, talk: Conversation) -> None:
        self.talk = talk

    @property
    def zone(self) -> ZoneInfo:
        return self.talk.publisher.zone

    def notice(self, run: Run) -> None:
        """The notice in the channel and in the run's thread, each with Postpone."""
        message = notice_message(run, messages.notice(run, zone=self.zone), self.talk.say)
        self._everywhere(run, message)

    def auto_start(self, run: Run) -> str | None:
        core = self.talk.core
        if run.run_state is RunState.PLANNED:
            missing = core.queries.missing_roles(run)
            words = messages.not_approved(run, missing=missing, policy=core.policy, zone=self.zone)
            self._everywhere(run, notice(f":hourglass_flowing_sand: {self.talk.say(words)}"))
            return "refused:approval"
        try:
            self.talk.engine.start(SYSTEM_ACTOR, run.id)
        except StartRefused as exc:
            self._everywhere(run, refusal_message(exc.refusal, StartRef(run=run.id), self.talk.say))
            return f"refused:{exc.refusal.rule.value}"
        except StartNotAnnounced:
            raise  # Slack is unreachable: the engine said so in the thread; the scheduler tries again later
        except InjectFailed:
            return "failed:inject"  # the engine already told the thread and the channel, and reverted
        except DomainError as exc:  # kill switch, preflight, steady state: say which, no retry
            if isinstance(exc, IllegalTransition) and core.queries.run(run.id).run_state is RunState.RUNNING:
                return "started"  # someone pressed Start a moment before: that is the start we wanted
            words = Words.of(f"{run.label} did not start by itself: ") + exc.words
            self._everywhere(run, notice(f":no_entry: {self.talk.say(words)}"))
            return f"refused:{_rule(exc)}"
        return "started"

    def missed(self, run: Run, kind: str) -> None:
        words = messages.missed(run, kind, zone=self.zone)
        self.talk.publisher.timeline(run.id, Words.of(":zzz: ") + words)

    def _everywhere(self, run: Run, message: Message) -> None:
        """The run's thread and the channel, through the outbox (see ``Publisher.everywhere``). Only posting
        the run's own message, when it has none yet, is done here: when that fails the firing is retried."""
        publisher = self.talk.publisher
        publisher.everywhere(publisher.post_plan(run.id), message, "scheduled notice")


def _rule(exc: DomainError) -> str:
    name = type(exc).__name__
    return {
        "KillSwitchEngaged": "kill_switch",
        "PreflightFailed": "preflight",
        "SteadyStateNotMet": "steady_state",
    }.get(name, name)


class CalendarPolls:
    """The freeze calendars' poll in every replica: each feed's freezes cached, and what needs a person said in
    the logs and ``/healthz`` every time, and in the channel once (a feed that held freezes reads empty)."""

    def __init__(self, feeds: CalendarFeeds, publisher: Publisher) -> None:
        self.feeds = feeds
        self.publisher = publisher

    def poll(self) -> None:
        try:
            results = self.feeds.poll_due()
            for feed in self.feeds.attention():
                log.warning("%s", feed.sentence())
        except Exception:
            log.exception("the freeze calendars could not be polled; the next poll tries again")
            return
        calendars = {calendar.label: calendar for calendar in self.feeds.calendars}
        for result in results:
            if result.went_empty:  # only the read that found it empty says so: the next one keeps or drops
                words = went_empty_words(calendars[result.label], result.went_empty)
                self.publisher.announce(self.publisher.say(Words.of(":warning: ", words)))

    def stale(self) -> list[str]:
        """For /healthz: one sentence per stale or degraded calendar feed (its last known freezes still hold)."""
        return [feed.sentence() for feed in self.feeds.attention()]


class StartSchedule:
    """The runtime's part of issue 8: the scheduler's tick and the calendar polls, run in every replica."""

    def __init__(self, scheduler: Scheduler, calendars: CalendarPolls) -> None:
        self.scheduler = scheduler
        self.calendars = calendars

    @property
    def feeds(self) -> CalendarFeeds:
        return self.calendars.feeds

    def jobs(self, settings: Settings) -> list[Job]:
        return [
            Job(self.tick, settings.tick_seconds, "scheduled-firings"),
            Job(self.calendars.poll, settings.calendar_poll_seconds, "freeze-calendars"),
        ]

    def tick(self) -> None:
        try:
            for fired in self.scheduler.tick():
                log.info("fired %s of run %s: %s", fired.kind, fired.run_id, fired.outcome)
        except Exception:
            log.exception("the scheduled firings could not be read; the next tick tries again")

    def stale(self) -> list[str]:
        """For /healthz: one sentence per stale or degraded calendar feed (its last known freezes still hold)."""
        return self.calendars.stale()


def build_schedule(
    talk: Conversation, db: Database, policy: Policy, *, holder: str | None = None, backoff: Backoff = DEFAULT_BACKOFF
) -> StartSchedule:
    scheduler = Scheduler(db, policy, Firings(talk), holder=holder, backoff=backoff)
    feeds = CalendarFeeds(db, policy.freeze_calendars, zone=talk.core.zone)
    return StartSchedule(scheduler, CalendarPolls(feeds, talk.publisher))
