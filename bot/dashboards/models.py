"""Which dashboard annotation marks which run's fault window, so any replica can end it at the revert."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Integer
from sqlalchemy.orm import Mapped, mapped_column

from storage.db import Base, UTCDateTime, utcnow


class DashboardAnnotation(Base):
    __tablename__ = "dashboard_annotations"

    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True)
    # None until Grafana answered the create (or when it never did).
    annotation_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # Set at the revert; when it comes before the create's answer, the create ends the annotation itself.
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    end_sent: Mapped[bool] = mapped_column(default=False)
