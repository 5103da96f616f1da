"""What reports would otherwise recompute on every read, stored, and indexed so a
percentile is read off an index instead of sorting every row of a window:

- `duration_ms` of finished runs and of succeeded/failed steps: generated columns, so
  the database fills them whenever a row ends (and for existing rows) with no code
  path able to forget it (PostgreSQL: STORED; SQLite: VIRTUAL, stored in the index);
- a step's run's `workflow` and `created_at` on the step row (`workflow`,
  `run_created_at`), written with the step, backfilled here.

Revision ID: 0010
Revises: 0009
"""

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)
_ENDED = {"workflow_run": "'succeeded', 'failed', 'cancelled'", "step_run": "'succeeded', 'failed'"}


def _duration_sql(dialect: str, statuses: str) -> str:
    """Milliseconds from started_at to finished_at, only for rows that ended so."""
    if dialect == "postgresql":
        span = "round(extract(epoch FROM (finished_at - started_at)) * 1000)::bigint"
        kind = "STORED"
    else:  # julianday counts whole milliseconds, as the report's figures do
        span = "CAST(round((julianday(finished_at) - julianday(started_at)) * 86400000) AS INTEGER)"
        kind = "VIRTUAL"  # SQLite adds only virtual generated columns; an index stores it
    return (f"BIGINT GENERATED ALWAYS AS (CASE WHEN status IN ({statuses}) THEN {span} END) "
            f"{kind}")  # fmt: skip


def upgrade() -> None:
    dialect = op.get_bind().dialect.name
    for table, statuses in _ENDED.items():
        op.execute(f"ALTER TABLE {table} ADD COLUMN duration_ms {_duration_sql(dialect, statuses)}")
    op.add_column("step_run", sa.Column("workflow", sa.String(200), nullable=True))
    op.add_column("step_run", sa.Column("run_created_at", TS, nullable=True))
    op.execute(
        "UPDATE step_run SET "
        "workflow = (SELECT r.workflow FROM workflow_run r WHERE r.id = step_run.run_id), "
        "run_created_at = (SELECT r.created_at FROM workflow_run r WHERE r.id = step_run.run_id)"
    )
    op.create_index("ix_step_run_window", "step_run",
                    ["workflow", "step_id", "run_created_at", "duration_ms"])  # fmt: skip
    op.create_index("ix_step_run_duration", "step_run",
                    ["workflow", "step_id", "duration_ms", "run_created_at"])  # fmt: skip
    op.create_index("ix_workflow_run_duration", "workflow_run",
                    ["workflow", "duration_ms", "created_at"])  # fmt: skip


def downgrade() -> None:
    op.drop_index("ix_workflow_run_duration", table_name="workflow_run")
    op.drop_index("ix_step_run_duration", table_name="step_run")
    op.drop_index("ix_step_run_window", table_name="step_run")
    with op.batch_alter_table("step_run") as batch:
        batch.drop_column("run_created_at")
        batch.drop_column("workflow")
    for table in _ENDED:
        op.execute(f"ALTER TABLE {table} DROP COLUMN duration_ms")
