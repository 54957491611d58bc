"""Freezes (manual, or cached from a calendar feed) and the health of each feed."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from storage.db import Base, UTCDateTime, utcnow

MANUAL = "manual"
FEED_PREFIX = "feed:"


def feed_source(feed_key: str) -> str:
    return f"{FEED_PREFIX}{feed_key}"


def freeze_label(freeze_id: int) -> str:
    return f"FRZ-{freeze_id}"


class Freeze(Base):
    """No run may start in ``[starts_at, ends_at)`` in ``environments`` (empty: every environment).

    A removed freeze keeps its row (``removed_at``) so the record shows what held when.
    """

    __tablename__ = "freezes"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    starts_at: Mapped[datetime] = mapped_column(UTCDateTime)
    ends_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    environments: Mapped[list[str]] = mapped_column(JSON, default=list)
    reason: Mapped[str] = mapped_column(Text)
    added_by: Mapped[str] = mapped_column(String(64))
    added_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # "manual", or "feed:<key>" for an event cached from a calendar feed.
    source: Mapped[str] = mapped_column(String(64), index=True, default=MANUAL)
    # A calendar event's UID and occurrence, so the record can point at the calendar entry.
    event: Mapped[str | None] = mapped_column(String(300), nullable=True)
    version: Mapped[int] = mapped_column(Integer, default=1)
    removed_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    removed_by: Mapped[str | None] = mapped_column(String(64), nullable=True)

    @property
    def label(self) -> str:
        return freeze_label(self.id)

    @property
    def everywhere(self) -> bool:
        return not self.environments

    @property
    def from_feed(self) -> bool:
        return self.source.startswith(FEED_PREFIX)

    def covers(self, environment: str, moment: datetime) -> bool:
        return (self.everywhere or environment in self.environments) and self.starts_at <= moment < self.ends_at


class FreezeFeed(Base):
    """One calendar feed's health; its freezes are the ``freezes`` rows with ``source = feed:<key>``."""

    __tablename__ = "freeze_feeds"

    key: Mapped[str] = mapped_column(String(32), primary_key=True)
    label: Mapped[str] = mapped_column(String(64))
    # The poll claim: a replica polls only after moving this forward with a conditional UPDATE.
    next_poll_at: Mapped[datetime] = mapped_column(UTCDateTime)
    last_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    last_success_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    last_error: Mapped[str | None] = mapped_column(Text, nullable=True)
    events_digest: Mapped[str | None] = mapped_column(String(64), nullable=True)
    freeze_count: Mapped[int] = mapped_column(Integer, default=0)
    # What the last read skipped or cut (the feed is then degraded; what it could read still holds).
    warning: Mapped[str | None] = mapped_column(Text, nullable=True)
    # An unchanged feed costs a 304 or a hash, not a parse: the validators and the hash of the last body read.
    content_hash: Mapped[str | None] = mapped_column(String(64), nullable=True)
    etag: Mapped[str | None] = mapped_column(String(300), nullable=True)
    last_modified: Mapped[str | None] = mapped_column(String(100), nullable=True)
    # When the body was last parsed: an unchanged feed is still read once a day, so its horizon moves on.
    read_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    # When the feed first read empty after holding events: its freezes are dropped only if the next read agrees.
    empty_since: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
