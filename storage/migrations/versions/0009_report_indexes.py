"""Indexes the report's aggregates read by: runs and gates by the time they were created,
audit entries by action and time.

Revision ID: 0009
Revises: 0008
"""

from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_workflow_run_created_at", "workflow_run", ["created_at", "workflow"])
    op.create_index("ix_interaction_created_at", "interaction", ["created_at"])
    op.create_index("ix_audit_log_action_at", "audit_log", ["action", "at"])


def downgrade() -> None:
    op.drop_index("ix_audit_log_action_at", table_name="audit_log")
    op.drop_index("ix_interaction_created_at", table_name="interaction")
    op.drop_index("ix_workflow_run_created_at", table_name="workflow_run")
