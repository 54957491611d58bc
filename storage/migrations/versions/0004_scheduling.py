"""scheduling: firings claimed once across replicas, freezes, calendar cache, automatic start

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-02 14:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import storage.db

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("runs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("auto_start", sa.Boolean(), server_default=sa.true(), nullable=False))

    op.create_table(
        "firings",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("key", sa.String(length=200), nullable=False),
        sa.Column("run_id", sa.Integer(), nullable=True),
        sa.Column("due_at", storage.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("claimed_by", sa.String(length=128), nullable=True),
        sa.Column("claimed_until", storage.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("done_at", storage.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("outcome", sa.String(length=64), nullable=True),
        sa.Column("created_at", storage.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["run_id"], ["runs.id"], name=op.f("fk_firings_run_id_runs"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_firings")),
        sa.UniqueConstraint("kind", "key", name="uq_firings_kind_key"),
    )
    with op.batch_alter_table("firings", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_firings_run_id"), ["run_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_firings_done_at"), ["done_at"], unique=False)

    op.create_table(
        "freezes",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("starts_at", storage.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("ends_at", storage.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("environments", sa.JSON(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("added_by", sa.String(length=64), nullable=False),
        sa.Column("added_at", storage.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("source", sa.String(length=64), nullable=False),
        sa.Column("event", sa.String(length=300), nullable=True),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("removed_at", storage.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("removed_by", sa.String(length=64), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_freezes")),
    )
    with op.batch_alter_table("freezes", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_freezes_ends_at"), ["ends_at"], unique=False)
        batch_op.create_index(batch_op.f("ix_freezes_source"), ["source"], unique=False)

    op.create_table(
        "freeze_feeds",
        sa.Column("key", sa.String(length=32), nullable=False),
        sa.Column("label", sa.String(length=64), nullable=False),
        sa.Column("next_poll_at", storage.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("last_attempt_at", storage.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("last_success_at", storage.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("events_digest", sa.String(length=64), nullable=True),
        sa.Column("freeze_count", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_freeze_feeds")),
    )


def downgrade() -> None:
    op.drop_table("freeze_feeds")
    with op.batch_alter_table("freezes", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_freezes_source"))
        batch_op.drop_index(batch_op.f("ix_freezes_ends_at"))
    op.drop_table("freezes")
    with op.batch_alter_table("firings", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_firings_done_at"))
        batch_op.drop_index(batch_op.f("ix_firings_run_id"))
    op.drop_table("firings")
    with op.batch_alter_table("runs", schema=None) as batch_op:
        batch_op.drop_column("auto_start")
