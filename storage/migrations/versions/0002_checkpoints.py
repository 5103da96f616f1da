"""LangGraph checkpoints: checkpoints, channel values by version, pending writes.

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def upgrade() -> None:
    op.create_table(
        "checkpoint",
        sa.Column("thread_id", sa.String(200), primary_key=True),
        sa.Column("checkpoint_ns", sa.String(500), primary_key=True),
        sa.Column("checkpoint_id", sa.String(64), primary_key=True),
        sa.Column("parent_checkpoint_id", sa.String(64), nullable=True),
        sa.Column("run_id", sa.String(64), nullable=True),
        sa.Column("type", sa.String(32), nullable=False),
        sa.Column("checkpoint", sa.LargeBinary(), nullable=False),
        sa.Column("metadata", JSON, nullable=False),
    )
    with op.batch_alter_table("checkpoint") as batch:
        batch.create_index("ix_checkpoint_run_id", ["run_id"], unique=False)

    op.create_table(
        "checkpoint_blob",
        sa.Column("thread_id", sa.String(200), primary_key=True),
        sa.Column("checkpoint_ns", sa.String(500), primary_key=True),
        sa.Column("channel", sa.String(500), primary_key=True),
        sa.Column("version", sa.String(64), primary_key=True),
        sa.Column("type", sa.String(32), nullable=False),
        sa.Column("blob", sa.LargeBinary(), nullable=True),
    )
    op.create_table(
        "checkpoint_write",
        sa.Column("thread_id", sa.String(200), primary_key=True),
        sa.Column("checkpoint_ns", sa.String(500), primary_key=True),
        sa.Column("checkpoint_id", sa.String(64), primary_key=True),
        sa.Column("task_id", sa.String(64), primary_key=True),
        sa.Column("idx", sa.Integer(), primary_key=True, autoincrement=False),
        sa.Column("task_path", sa.String(500), nullable=False),
        sa.Column("channel", sa.String(500), nullable=False),
        sa.Column("type", sa.String(32), nullable=False),
        sa.Column("blob", sa.LargeBinary(), nullable=False),
    )


def downgrade() -> None:
    for table in ("checkpoint_write", "checkpoint_blob", "checkpoint"):
        op.drop_table(table)
