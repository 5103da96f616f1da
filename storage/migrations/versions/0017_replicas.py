"""The processes serving the database, refreshed at each sweep: replicas alive.

Revision ID: 0017
Revises: 0016
"""

import sqlalchemy as sa
from alembic import op

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "replica",
        sa.Column("id", sa.String(200), primary_key=True),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("seen_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_replica_seen_at", "replica", ["seen_at"])


def downgrade() -> None:
    op.drop_index("ix_replica_seen_at", "replica")
    op.drop_table("replica")
