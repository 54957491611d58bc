"""The Alertmanager silences of each run: created at the inject, expired with the revert, exactly once."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, ForeignKey, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from storage.db import Base, UTCDateTime, utcnow


class RunSilence(Base):
    __tablename__ = "run_silences"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"), index=True)
    silence_id: Mapped[str] = mapped_column(String(64))
    matchers: Mapped[dict[str, str]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # Alertmanager lifts it by itself then, even if every replica died: the run's latest end plus a margin.
    ends_at: Mapped[datetime] = mapped_column(UTCDateTime)
    # Set when the fault was reverted; the silence is expired then, and again by a periodic job until it is.
    lift_requested_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    # Set by the replica that expires it (a conditional UPDATE is the claim), cleared again if that failed.
    expired_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(Text, nullable=True)
