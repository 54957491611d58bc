"""calendar feeds: what a read skipped, HTTP validators and body hash, and when a feed went empty

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-07 04:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import storage.db

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("freeze_feeds") as batch:
        batch.add_column(sa.Column("warning", sa.Text(), nullable=True))
        batch.add_column(sa.Column("content_hash", sa.String(length=64), nullable=True))
        batch.add_column(sa.Column("etag", sa.String(length=300), nullable=True))
        batch.add_column(sa.Column("last_modified", sa.String(length=100), nullable=True))
        batch.add_column(sa.Column("empty_since", storage.db.UTCDateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("freeze_feeds") as batch:
        for column in ("empty_since", "last_modified", "etag", "content_hash", "warning"):
            batch.drop_column(column)
