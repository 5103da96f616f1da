"""Interactions know why they exist (a gate or a crash recovery) and which interrupt they resume.

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("interaction") as batch:
        batch.add_column(sa.Column("purpose", sa.String(16), nullable=False, server_default="gate"))
        batch.add_column(sa.Column("interrupt_id", sa.String(64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("interaction") as batch:
        batch.drop_column("interrupt_id")
        batch.drop_column("purpose")
