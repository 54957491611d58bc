"""A run: one planned execution of one experiment, and everything recorded about it."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, Boolean, ForeignKey, Integer, String, Text, UniqueConstraint, true
from sqlalchemy.orm import Mapped, mapped_column, relationship

from bot.vocabulary import run_label as run_label  # re-exported for callers that still import it here
from storage.db import Base, UTCDateTime, utcnow


class RunState(StrEnum):
    PLANNED = "planned"
    APPROVED = "approved"
    RUNNING = "running"
    COMPLETED = "completed"
    ABORTED = "aborted"
    FAILED = "failed"
    REJECTED = "rejected"
    CANCELLED = "cancelled"
    EXPIRED = "expired"

    @property
    def is_final(self) -> bool:
        """Ended: nothing can happen to the run any more."""
        return self not in ACTIVE


# The states a run is still going in (planned, approved, running); every other state is final.
ACTIVE: frozenset[RunState] = frozenset({RunState.PLANNED, RunState.APPROVED, RunState.RUNNING})
# How a run that started can end; the other final states (rejected, cancelled, expired) end a run that never ran.
RAN: frozenset[RunState] = frozenset({RunState.COMPLETED, RunState.ABORTED, RunState.FAILED})

ALLOWED: dict[RunState, frozenset[RunState]] = {
    RunState.PLANNED: frozenset(
        {RunState.PLANNED, RunState.APPROVED, RunState.REJECTED, RunState.CANCELLED, RunState.EXPIRED}
    ),
    RunState.APPROVED: frozenset(
        {RunState.PLANNED, RunState.RUNNING, RunState.REJECTED, RunState.CANCELLED, RunState.EXPIRED}
    ),
    RunState.RUNNING: RAN,
}


class Run(Base):
    __tablename__ = "runs"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    experiment_id: Mapped[str] = mapped_column(String(32), index=True)
    experiment: Mapped[dict[str, Any]] = mapped_column(JSON)
    experiment_hash: Mapped[str] = mapped_column(String(64))
    environment: Mapped[str] = mapped_column(String(64))
    owner: Mapped[str] = mapped_column(String(64), index=True)
    planned_start: Mapped[datetime] = mapped_column(UTCDateTime)
    rollback_steps: Mapped[str] = mapped_column(Text)
    notes: Mapped[str] = mapped_column(Text, default="")
    state: Mapped[str] = mapped_column(String(16), index=True, default=RunState.PLANNED.value)
    version: Mapped[int] = mapped_column(Integer, default=1)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    approved_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    started_by: Mapped[str | None] = mapped_column(String(64), nullable=True)
    dry_run: Mapped[bool] = mapped_column(Boolean, default=False)
    # Start by itself at the planned start (the scheduler's firing); untick to start by hand only.
    auto_start: Mapped[bool] = mapped_column(Boolean, default=True, server_default=true())
    # The maximum duration this run was started with: the experiment's, or shorter for a rehearsal.
    max_duration_seconds: Mapped[int | None] = mapped_column(Integer, nullable=True)
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    ended_by: Mapped[str | None] = mapped_column(String(64), nullable=True)
    end_reason: Mapped[str | None] = mapped_column(Text, nullable=True)

    approvals: Mapped[list[Approval]] = relationship(
        back_populates="run", cascade="all, delete-orphan", order_by="Approval.id", lazy="selectin"
    )

    @property
    def label(self) -> str:
        return run_label(self.id)

    @property
    def run_state(self) -> RunState:
        return RunState(self.state)


class Approval(Base):
    __tablename__ = "approvals"
    __table_args__ = (
        UniqueConstraint("run_id", "role", name="uq_approvals_run_role"),
        UniqueConstraint("run_id", "user_id", name="uq_approvals_run_user"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"), index=True)
    role: Mapped[str] = mapped_column(String(32))
    user_id: Mapped[str] = mapped_column(String(64))
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    run: Mapped[Run] = relationship(back_populates="approvals")
