"""A retrospective as plain data (built by ``bot.retro.service.build``), and the record of where it was posted.

The dataclasses carry values, not markup: people stay ``Person`` values inside ``Words`` and moments stay
datetimes (with the team's local text alongside), so Slack, the console and Markdown render the same data.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from enum import StrEnum

from sqlalchemy import ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from adapters.base import RevertStep
from bot.records.models import MeasurementPhase
from bot.words import Words
from storage.db import Base, UTCDateTime, utcnow


class RetrospectivePost(Base):
    """Where a run's retrospective was posted: written once, with ``retrospective.posted`` in the audit chain."""

    __tablename__ = "retrospectives"

    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True)
    channel_id: Mapped[str] = mapped_column(String(32))
    message_ts: Mapped[str] = mapped_column(String(32))
    chart_attached: Mapped[bool] = mapped_column(default=False)
    posted_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Verdict(StrEnum):
    HELD = "held"
    REFUTED = "refuted"
    NOT_TESTED = "not tested"


class Ending(StrEnum):
    """How the run ended, as people tell them apart."""

    COMPLETED = "completed"
    STOP_CONDITION = "auto-aborted on a stop condition"
    ABORTED = "aborted by a person"
    CONTROLLER_LOST = "controller lost"
    SYSTEM_ABORT = "aborted by chaosbot"
    FAILED = "failed"
    NOT_RUN = "never ran"


@dataclass(frozen=True)
class Breach:
    """The sample that tripped a stop condition: which condition, which value against which threshold."""

    condition: str
    value: float | None
    unit: str
    threshold: str
    at: datetime | None
    detail: str


@dataclass(frozen=True)
class Point:
    at: datetime
    value: float | None  # None: the probe itself failed (no value)
    ok: bool
    phase: MeasurementPhase
    detail: str = ""


@dataclass(frozen=True)
class PhaseStats:
    samples: int
    errors: int  # probe errors: samples without a value
    failing: int  # samples outside the threshold (probe errors are counted apart)
    p50: float | None
    p95: float | None
    worst: float | None


@dataclass(frozen=True)
class ConditionReport:
    name: str
    kind: str  # http | prometheus
    unit: str  # "ms" for HTTP latency, "" for a query's value
    threshold: str  # as people read it: "status in [200], ≤ 500 ms"
    upper: float | None  # the line to draw: a maximum ...
    lower: float | None  # ... and/or a minimum
    phases: dict[MeasurementPhase, PhaseStats]
    points: tuple[Point, ...]
    breached: bool

    @property
    def breaches(self) -> int:
        """Samples outside the threshold while the fault was on (what stop conditions act on)."""
        return self.phases[MeasurementPhase.FAULT].failing


@dataclass(frozen=True)
class TimelineEntry:
    at: datetime
    day: str  # in the team's time zone: "Wed 02 Dec 2026"
    clock: str  # "14:05:12"
    abbreviation: str  # the zone's name at that moment: "AEDT"
    kind: str  # planned, edited, approved, notice, started, injected, breach, aborted, reverted, recovered, ...
    what: Words

    @property
    def local(self) -> str:
        return f"{self.day} {self.clock} {self.abbreviation}"


@dataclass(frozen=True)
class Recovery:
    rto_seconds: float
    seconds: float | None  # measured time back to the steady state after the revert
    met: bool | None  # None: not measured
    margin_seconds: float | None  # rto - seconds: positive to spare, negative over
    text: str


@dataclass(frozen=True)
class ActionItemLine:
    """One action item as the retrospective shows it (read from the action items table by the caller)."""

    label: str
    what: str
    owner: str
    due_on: date | None
    done: bool = False
    link: str | None = None


@dataclass(frozen=True)
class SilenceLine:
    """An Alertmanager silence the run made for an alert it was expected to fire, and what became of it."""

    silence_id: str
    matchers: str  # as people read them: "alertname=ShareLinkLatencyHigh, env=staging"
    status: str  # "expired at 14:05:12 CET", "not expired (…); ends by itself at …", "active until …"


@dataclass(frozen=True)
class Link:
    title: str
    url: str


@dataclass(frozen=True)
class Window:
    """The run's window: its first measurement (or start) to its end; the fault window inside it."""

    start: datetime
    end: datetime
    fault_start: datetime | None
    fault_end: datetime | None


@dataclass(frozen=True)
class Retrospective:
    run_id: int
    label: str
    experiment_id: str
    title: str
    hypothesis: str
    environment: str
    owner: str
    state: str
    ending: Ending
    rehearsal: bool
    zone: str
    verdict: Verdict
    why: Words
    breach: Breach | None
    window: Window | None
    timeline: tuple[TimelineEntry, ...]
    conditions: tuple[ConditionReport, ...]
    recovery: Recovery
    gaps: tuple[str, ...]
    action_items: tuple[ActionItemLine, ...] = ()
    links: tuple[Link, ...] = field(default=())
    silences: tuple[SilenceLine, ...] = ()
    rollbacks: tuple[RevertStep, ...] = ()  # each step of the latest revert, when the adapter reports them

    def moment(self, kind: str) -> datetime | None:
        """The first timeline moment of a kind (``injected``, ``breach``, ``recovered``...), for the chart."""
        return next((entry.at for entry in self.timeline if entry.kind == kind), None)
