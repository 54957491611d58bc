"""records replayed from the local spool (applied once), the replica registry, and lease hand-overs

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-02 15:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import storage.db

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "spool_applied",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("applied_at", storage.db.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_spool_applied")),
    )
    op.create_table(
        "replicas",
        sa.Column("holder", sa.String(length=128), nullable=False),
        sa.Column("expires_at", storage.db.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("holder", name=op.f("pk_replicas")),
    )
    with op.batch_alter_table("leases", schema=None) as batch_op:
        batch_op.add_column(sa.Column("handed_over_by", sa.String(length=128), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("leases", schema=None) as batch_op:
        batch_op.drop_column("handed_over_by")
    op.drop_table("replicas")
    op.drop_table("spool_applied")
