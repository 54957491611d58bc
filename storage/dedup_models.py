"""Requests already handled, so a retried delivery (Slack's X-Slack-Retry-Num) is applied once."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import String
from sqlalchemy.orm import Mapped, mapped_column

from storage.db import Base, UTCDateTime


class ProcessedRequest(Base):
    __tablename__ = "processed_requests"

    key: Mapped[str] = mapped_column(String(255), primary_key=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
