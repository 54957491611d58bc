"""retrospectives posted once per run, and dashboard annotations of the fault window

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-02 14:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import storage.db

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "retrospectives",
        sa.Column("run_id", sa.Integer(), nullable=False),
        sa.Column("channel_id", sa.String(length=32), nullable=False),
        sa.Column("message_ts", sa.String(length=32), nullable=False),
        sa.Column("chart_attached", sa.Boolean(), nullable=False),
        sa.Column("posted_at", storage.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["run_id"], ["runs.id"], name=op.f("fk_retrospectives_run_id_runs"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("run_id", name=op.f("pk_retrospectives")),
    )
    op.create_table(
        "dashboard_annotations",
        sa.Column("run_id", sa.Integer(), nullable=False),
        sa.Column("annotation_id", sa.Integer(), nullable=True),
        sa.Column("started_at", storage.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("ended_at", storage.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("end_sent", sa.Boolean(), nullable=False),
        sa.ForeignKeyConstraint(
            ["run_id"], ["runs.id"], name=op.f("fk_dashboard_annotations_run_id_runs"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("run_id", name=op.f("pk_dashboard_annotations")),
    )


def downgrade() -> None:
    op.drop_table("dashboard_annotations")
    op.drop_table("retrospectives")
