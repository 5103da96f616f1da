"""Signatures of the Slack requests accepted in the last five minutes: replays refused.

Revision ID: 0008
Revises: 0007
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "seen_request",
        sa.Column("signature", sa.String(100), primary_key=True),
        sa.Column("seen_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_seen_request_seen_at", "seen_request", ["seen_at"])


def downgrade() -> None:
    op.drop_index("ix_seen_request_seen_at", "seen_request")
    op.drop_table("seen_request")
