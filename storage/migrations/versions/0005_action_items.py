"""action items and the backlog they are filed in; the indexes the monthly and quarterly summaries need

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02 14:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from storage.db import UTCDateTime

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "action_items",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("run_id", sa.Integer(), nullable=False),
        sa.Column("what", sa.String(length=300), nullable=False),
        sa.Column("owner", sa.String(length=64), nullable=False),
        sa.Column("due_on", sa.Date(), nullable=False),
        sa.Column("status", sa.String(length=8), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("created_by", sa.String(length=64), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("done_by", sa.String(length=64), nullable=True),
        sa.Column("done_at", UTCDateTime(), nullable=True),
        sa.Column("backlog_kind", sa.String(length=16), nullable=True),
        sa.Column("backlog_url", sa.Text(), nullable=True),
        sa.Column("backlog_key", sa.String(length=64), nullable=True),
        sa.Column("backlog_state", sa.String(length=8), nullable=True),
        sa.Column("backlog_attempts", sa.Integer(), nullable=False),
        sa.Column("backlog_next_at", UTCDateTime(), nullable=True),
        sa.Column("backlog_last_error", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(["run_id"], ["runs.id"], name=op.f("fk_action_items_run_id_runs"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_action_items")),
    )
    with op.batch_alter_table("action_items", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_action_items_run_id"), ["run_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_action_items_created_at"), ["created_at"], unique=False)
        batch_op.create_index(batch_op.f("ix_action_items_done_at"), ["done_at"], unique=False)
        batch_op.create_index("ix_action_items_status_due_on", ["status", "due_on"], unique=False)
        batch_op.create_index("ix_action_items_backlog_state_next", ["backlog_state", "backlog_next_at"], unique=False)
    with op.batch_alter_table("runs", schema=None) as batch_op:
        batch_op.create_index("ix_runs_planned_start_state", ["planned_start", "state"], unique=False)
        batch_op.create_index("ix_runs_experiment_id_started_at", ["experiment_id", "started_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("runs", schema=None) as batch_op:
        batch_op.drop_index("ix_runs_experiment_id_started_at")
        batch_op.drop_index("ix_runs_planned_start_state")
    op.drop_table("action_items")
