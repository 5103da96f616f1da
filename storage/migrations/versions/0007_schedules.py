"""Schedules from workflow files: overlap, catch-up, circuit breaker, pause, provenance.

The id widens to 200 characters: it is "<workflow>/<schedule id>".

Revision ID: 0007
Revises: 0006
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    with op.batch_alter_table("schedule") as batch:
        batch.alter_column("id", existing_type=sa.String(64), type_=sa.String(200),
                           existing_nullable=False)  # fmt: skip
        batch.add_column(sa.Column("overlap", sa.String(16), nullable=False,
                                   server_default="skip"))  # fmt: skip
        batch.add_column(sa.Column("catchup_s", sa.Float(), nullable=False, server_default="0"))
        batch.add_column(sa.Column("pause_after_failures", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("paused", sa.Boolean(), nullable=False,
                                   server_default=sa.false()))  # fmt: skip
        batch.add_column(sa.Column("paused_by", sa.String(200), nullable=True))
        batch.add_column(sa.Column("paused_reason", sa.Text(), nullable=True))
        batch.add_column(sa.Column("paused_at", TS, nullable=True))
        batch.add_column(sa.Column("resumed_at", TS, nullable=True))
        batch.add_column(sa.Column("failures_in_row", sa.Integer(), nullable=False,
                                   server_default="0"))  # fmt: skip
        batch.add_column(sa.Column("missed", sa.Integer(), nullable=False, server_default="0"))
        batch.add_column(sa.Column("last_run_id", sa.String(64), nullable=True))
        batch.add_column(sa.Column("source", sa.String(1000), nullable=True))
        batch.add_column(sa.Column("spec_digest", sa.String(64), nullable=True))
        batch.create_index("ix_schedule_next_fire_at", ["next_fire_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("schedule") as batch:
        batch.drop_index("ix_schedule_next_fire_at")
        for column in ("spec_digest", "source", "last_run_id", "missed", "failures_in_row",
                       "resumed_at", "paused_at", "paused_reason", "paused_by", "paused",
                       "pause_after_failures", "catchup_s", "overlap"):  # fmt: skip
            batch.drop_column(column)
        batch.alter_column("id", existing_type=sa.String(200), type_=sa.String(64),
                           existing_nullable=False)  # fmt: skip
