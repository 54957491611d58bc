"""the Alertmanager silences of each run

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-07 04:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import storage.db

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "run_silences",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("run_id", sa.Integer(), nullable=False),
        sa.Column("silence_id", sa.String(length=64), nullable=False),
        sa.Column("matchers", sa.JSON(), nullable=False),
        sa.Column("created_at", storage.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("ends_at", storage.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("lift_requested_at", storage.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("expired_at", storage.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(["run_id"], ["runs.id"], name=op.f("fk_run_silences_run_id_runs"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_run_silences")),
    )
    op.create_index(op.f("ix_run_silences_run_id"), "run_silences", ["run_id"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_run_silences_run_id"), table_name="run_silences")
    op.drop_table("run_silences")
