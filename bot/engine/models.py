"""The engine's own tables: run leases, replicas, spool ids (a run's records live in ``bot.records``)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from storage.db import Base, UTCDateTime, utcnow


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
