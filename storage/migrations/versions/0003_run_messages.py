"""run messages: the Slack coordinates of each run's message, owned by the interface layer

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-02 14:30:00
"""

from collections.abc import Sequence
from typing import Literal

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# SQLite (3.35+) drops a plain column in place. Recreating `runs` instead would, with foreign keys on,
# cascade-delete every run's approvals, faults and records when the old table is dropped.
IN_PLACE: Literal["never"] = "never"


def upgrade() -> None:
    op.create_table(
        "run_messages",
        sa.Column("run_id", sa.Integer(), nullable=False),
        sa.Column("channel_id", sa.String(length=32), nullable=False),
        sa.Column("message_ts", sa.String(length=32), nullable=False),
        sa.ForeignKeyConstraint(["run_id"], ["runs.id"], name=op.f("fk_run_messages_run_id_runs"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("run_id", name=op.f("pk_run_messages")),
    )
    op.execute(
        "INSERT INTO run_messages (run_id, channel_id, message_ts) "
        "SELECT id, channel_id, message_ts FROM runs WHERE channel_id IS NOT NULL AND message_ts IS NOT NULL"
    )
    with op.batch_alter_table("runs", schema=None, recreate=IN_PLACE) as batch_op:
        batch_op.drop_column("message_ts")
        batch_op.drop_column("channel_id")


def downgrade() -> None:
    with op.batch_alter_table("runs", schema=None, recreate=IN_PLACE) as batch_op:
        batch_op.add_column(sa.Column("channel_id", sa.String(length=32), nullable=True))
        batch_op.add_column(sa.Column("message_ts", sa.String(length=32), nullable=True))
    op.execute(
        "UPDATE runs SET "
        "channel_id = (SELECT channel_id FROM run_messages WHERE run_messages.run_id = runs.id), "
        "message_ts = (SELECT message_ts FROM run_messages WHERE run_messages.run_id = runs.id)"
    )
    op.drop_table("run_messages")
