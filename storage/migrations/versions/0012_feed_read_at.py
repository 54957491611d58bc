"""calendar feeds: when the body was last parsed, so an unchanged feed is still read once a day

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-07 07:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import storage.db

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("freeze_feeds") as batch:
        batch.add_column(sa.Column("read_at", storage.db.UTCDateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("freeze_feeds") as batch:
        batch.drop_column("read_at")
