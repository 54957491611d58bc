"""The engine's tables: fault handles, probe measurements, run outcomes, run leases, replicas, spool ids.

States and phases are stored as their plain string values (``StrEnum``), so no migration was needed when
they became enums.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, Boolean, Float, ForeignKey, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from storage.db import Base, UTCDateTime, utcnow


class FaultState(StrEnum):
    """Where a recorded fault is in its life (not what the backend reports: that is ``adapters.base.FaultStatus``)."""

    PREPARED = "prepared"
    INJECTED = "injected"
    REVERTED = "reverted"
    FAILED = "failed"


class MeasurementPhase(StrEnum):
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
    state: Mapped[str] = mapped_column(String(16), default=FaultState.PREPARED.value)
    injected_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    reverted_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    last_error: Mapped[str | None] = mapped_column(Text, nullable=True)

    @property
    def fault_state(self) -> FaultState:
        return FaultState(self.state)


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

    @property
    def measurement_phase(self) -> MeasurementPhase:
        return MeasurementPhase(self.phase)


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


class Lease(Base):
    """The database form of a run lease (see ``coordination``): a heartbeat with an expiry."""

    __tablename__ = "leases"

    run_id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    holder: Mapped[str] = mapped_column(String(128))
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    # Set when the holder shut down and handed the run over: the next replica adopts it instead of reverting.
    handed_over_by: Mapped[str | None] = mapped_column(String(128), nullable=True)


class Replica(Base):
    """A live bot process (heartbeat with an expiry by the database's clock): who can adopt a handed-over run."""

    __tablename__ = "replicas"

    holder: Mapped[str] = mapped_column(String(128), primary_key=True)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)


class SpoolApplied(Base):
    """A spooled record's id, written in the same transaction as the record: a replay applies it once."""

    __tablename__ = "spool_applied"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    kind: Mapped[str] = mapped_column(String(32))
    applied_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
