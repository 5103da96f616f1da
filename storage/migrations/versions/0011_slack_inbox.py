"""The Slack inbox: commands, clicks and submissions stored before they are acked.

It is also the HTTP guard's replay record, so `seen_request` (0008) goes.

Revision ID: 0011
Revises: 0010
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "slack_inbox",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("user_id", sa.String(64), nullable=True),
        sa.Column("channel", sa.String(200), nullable=True),
        sa.Column("payload", JSON, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("claimed_by", sa.String(200), nullable=True),
        sa.Column("lease_until", TS, nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("received_at", TS, nullable=False),
        sa.Column("finished_at", TS, nullable=True),
    )
    op.create_index("ix_slack_inbox_status_lease", "slack_inbox", ["status", "lease_until"])
    op.create_index("ix_slack_inbox_finished_at", "slack_inbox", ["finished_at"])
    op.drop_index("ix_seen_request_seen_at", "seen_request")
    op.drop_table("seen_request")


def downgrade() -> None:
    op.create_table(
        "seen_request",
        sa.Column("signature", sa.String(100), primary_key=True),
        sa.Column("seen_at", TS, nullable=False),
    )
    op.create_index("ix_seen_request_seen_at", "seen_request", ["seen_at"])
    op.drop_index("ix_slack_inbox_finished_at", "slack_inbox")
    op.drop_index("ix_slack_inbox_status_lease", "slack_inbox")
    op.drop_table("slack_inbox")
