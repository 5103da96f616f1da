"""Indexes the timers' window load reads by: open questions by when a reminder or an
escalation falls due (the deadline already has one), so loading the next minutes of
timers does not read every waiting question (orchestrator/horizon.py).

Revision ID: 0013
Revises: 0011
"""

from alembic import op

revision = "0013"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_interaction_next_reminder_at", "interaction", ["next_reminder_at"])
    op.create_index("ix_interaction_escalate_at", "interaction", ["escalate_at"])


def downgrade() -> None:
    op.drop_index("ix_interaction_escalate_at", table_name="interaction")
    op.drop_index("ix_interaction_next_reminder_at", table_name="interaction")
