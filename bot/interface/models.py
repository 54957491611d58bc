"""Tables the interface layer owns: where each run's one message is, in the chat platform."""

from __future__ import annotations

from sqlalchemy import ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from storage.db import Base


class RunMessage(Base):
    """The channel and ts of a run's message, the one updated in place on every change."""

    __tablename__ = "run_messages"

    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True)
    channel_id: Mapped[str] = mapped_column(String(32))
    message_ts: Mapped[str] = mapped_column(String(32))
