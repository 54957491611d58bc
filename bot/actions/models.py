"""An action item: one follow-up a run produced, its owner and due date, and where it was filed."""

from __future__ import annotations

from datetime import date, datetime
from enum import StrEnum

from sqlalchemy import Date, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from storage.db import Base, UTCDateTime, utcnow

WHAT_MAX = 300  # one line a person can scan in a list; details belong in the backlog issue


class ItemStatus(StrEnum):
    OPEN = "open"
    DONE = "done"


class BacklogState(StrEnum):
    PENDING = "pending"  # stored, not yet filed (never tried, or the backlog was down)
    FILED = "filed"


class ActionItem(Base):
    __tablename__ = "action_items"
    __table_args__ = (
        # The open list (overdue first) and the overdue counts.
        Index("ix_action_items_status_due_on", "status", "due_on"),
        # file_pending: the items still waiting for the backlog, soonest retry first.
        Index("ix_action_items_backlog_state_next", "backlog_state", "backlog_next_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"), index=True)
    what: Mapped[str] = mapped_column(String(WHAT_MAX))
    owner: Mapped[str] = mapped_column(String(64))
    due_on: Mapped[date] = mapped_column(Date)
    status: Mapped[str] = mapped_column(String(8), default=ItemStatus.OPEN.value)
    version: Mapped[int] = mapped_column(Integer, default=1)
    created_by: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    done_by: Mapped[str | None] = mapped_column(String(64), nullable=True)
    done_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True, index=True)
    # Where the item was filed; kind is None when the team has no backlog configured.
    backlog_kind: Mapped[str | None] = mapped_column(String(16), nullable=True)
    backlog_url: Mapped[str | None] = mapped_column(Text, nullable=True)
    backlog_key: Mapped[str | None] = mapped_column(String(64), nullable=True)
    backlog_state: Mapped[str | None] = mapped_column(String(8), nullable=True)
    backlog_attempts: Mapped[int] = mapped_column(Integer, default=0)
    # The earliest moment the next filing attempt may start (backoff, and a claim while one is in flight).
    backlog_next_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    backlog_last_error: Mapped[str | None] = mapped_column(Text, nullable=True)

    @property
    def item_status(self) -> ItemStatus:
        return ItemStatus(self.status)

    @property
    def label(self) -> str:
        return f"AI-{self.id}"
