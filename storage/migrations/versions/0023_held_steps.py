"""step_run.held_at: a step resumed outside a pass (its question answered, or restarted
by recovery) that waits for room in its workflow's share of the workers is marked, so
that recovery after a crash resumes it as a step that had not started again, instead
of asking whether a step cut off after its answer runs again (orchestrator/held_steps.py).

A column added in place (ALTER TABLE ADD COLUMN on SQLite too, no rebuild), so the
triggers of migration 0018 on step_run stay.

Revision ID: 0023
Revises: 0020
"""

import sqlalchemy as sa
from alembic import op

revision = "0023"
down_revision = "0020"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("step_run", sa.Column("held_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    op.drop_column("step_run", "held_at")
