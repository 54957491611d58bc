"""A run's record tables: fault handles, probe measurements, run outcomes.

States and phases are stored as their plain string values (``StrEnum``), so no migration was needed when
they became enums.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, Boolean, Float, ForeignKey, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from adapters.base import RevertStep
from storage.db import Base, UTCDateTime, utcnow


class FaultRecordState(StrEnum):
    """Where a recorded fault is in its life (not what the backend reports: that is ``adapters.base.FaultState``)."""

    PREPARED = "prepared"
    INJECTED = "injected"
    REVERTED = "reverted"
    FAILED = "failed"


class MeasurementPhase(StrEnum):
    """When a probe sample was taken: before the inject, while the fault is in, or after its revert."""

    BASELINE = "baseline"
    FAULT = "fault"
    RECOVERY = "recovery"


class FaultRecord(Base):
    """A fault's persisted handle: written before the backend call, so a crash can always be reverted."""

    __tablename__ = "faults"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"), index=True)
    adapter: Mapped[str] = mapped_column(String(64))
    handle: Mapped[dict[str, Any]] = mapped_column(JSON)
    state: Mapped[str] = mapped_column(String(16), default=FaultRecordState.PREPARED.value)
    injected_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    reverted_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    last_error: Mapped[str | None] = mapped_column(Text, nullable=True)
    # The latest revert's steps, when the adapter reports them (a Chaos Toolkit experiment's rollbacks):
    # [{"name", "status", "duration_seconds", "error"}], never a secret value.
    revert_steps: Mapped[list[dict[str, Any]] | None] = mapped_column(JSON, nullable=True)

    def steps(self) -> list[RevertStep]:
        return [RevertStep.from_json(step) for step in self.revert_steps or []]

    @property
    def fault_state(self) -> FaultRecordState:
        return FaultRecordState(self.state)


class Measurement(Base):
    """One probe sample of one stop condition."""

    __tablename__ = "measurements"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"), index=True)
    condition: Mapped[str] = mapped_column(String(80))
    phase: Mapped[str] = mapped_column(String(16))
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    value: Mapped[float | None] = mapped_column(Float, nullable=True)
    ok: Mapped[bool] = mapped_column(Boolean)
    detail: Mapped[str] = mapped_column(Text, default="")


class Outcome(Base):
    """How a run ended, for the retrospective and the monthly summary."""

    __tablename__ = "outcomes"

    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True)
    result: Mapped[str] = mapped_column(String(16))  # completed|aborted|failed (a final RunState)
    hypothesis_held: Mapped[bool | None] = mapped_column(Boolean, nullable=True)
    recovery_seconds: Mapped[float | None] = mapped_column(Float, nullable=True)
    rto_seconds: Mapped[float] = mapped_column(Float)
    breach: Mapped[str | None] = mapped_column(Text, nullable=True)
    summary: Mapped[str] = mapped_column(Text, default="")
    recorded_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # Set when a stop condition aborted the run and its recovery is measured after the revert: the
    # retrospective waits until then (or until the recovery is recorded, which sets it to that moment).
    recovery_watch_until: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)

    def awaits_recovery(self, now: datetime) -> bool:
        """Whether the recovery after its abort is still being measured (its retrospective waits)."""
        return self.recovery_watch_until is not None and self.recovery_watch_until > now
