"""What reports would otherwise recompute on every read, stored, and indexed so a
percentile is read off an index instead of sorting every row of a window:

- `duration_ms` of finished runs and of succeeded/failed steps: generated columns, so
  the database fills them whenever a row ends (and for existing rows) with no code
  path able to forget it (PostgreSQL: STORED; SQLite: VIRTUAL, stored in the index);
- a step's run's `workflow` and `created_at` on the step row (`workflow`,
  `run_created_at`), and a gate's run's `workflow` on the interaction row, written with
  the row, backfilled here.

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
# column: (table, start, end, when): milliseconds from start to end for rows where `when`
# holds. A gate's decision_ms is how long a person took: answered by a person (not by
# opsloop at a deadline), as the report's time to decision counts it.
GENERATED = {
    "duration_ms": [
        ("workflow_run", "started_at", "finished_at",
         "status IN ('succeeded', 'failed', 'cancelled')"),
        ("step_run", "started_at", "finished_at", "status IN ('succeeded', 'failed')"),
    ],
    "decision_ms": [
        ("interaction", "created_at", "answered_at",
         "answered_at IS NOT NULL AND status IN ('approved', 'rejected', 'decided', 'submitted')"
         " AND (answered_by IS NULL OR answered_by <> 'opsloop')"),
    ],
}  # fmt: skip


def _generated(dialect: str, start: str, end: str, when: str) -> str:
    if dialect == "postgresql":
        span = f"round(extract(epoch FROM ({end} - {start})) * 1000)::bigint"
        kind = "STORED"
    else:  # julianday counts whole milliseconds, as the report's figures do
        span = f"CAST(round((julianday({end}) - julianday({start})) * 86400000) AS INTEGER)"
        kind = "VIRTUAL"  # SQLite adds only virtual generated columns; an index stores it
    return f"BIGINT GENERATED ALWAYS AS (CASE WHEN {when} THEN {span} END) {kind}"


def upgrade() -> None:
    dialect = op.get_bind().dialect.name
    for column, tables in GENERATED.items():
        for table, start, end, when in tables:
            op.execute(f"ALTER TABLE {table} ADD COLUMN {column} "
                       f"{_generated(dialect, start, end, when)}")  # fmt: skip
    op.add_column("step_run", sa.Column("workflow", sa.String(200), nullable=True))
    op.add_column("step_run", sa.Column("run_created_at", TS, nullable=True))
    op.execute(
        "UPDATE step_run SET "
        "workflow = (SELECT r.workflow FROM workflow_run r WHERE r.id = step_run.run_id), "
        "run_created_at = (SELECT r.created_at FROM workflow_run r WHERE r.id = step_run.run_id)"
    )
    op.create_index("ix_step_run_window", "step_run",
                    ["workflow", "step_id", "run_created_at", "duration_ms"])  # fmt: skip
    # PostgreSQL (before 18) has no skip scan: counting a window's steps needs the time first.
    op.create_index("ix_step_run_created", "step_run",
                    ["run_created_at", "workflow", "step_id", "duration_ms"])  # fmt: skip
    op.create_index("ix_step_run_duration", "step_run",
                    ["workflow", "step_id", "duration_ms", "run_created_at"])  # fmt: skip
    op.create_index("ix_workflow_run_duration", "workflow_run",
                    ["workflow", "duration_ms", "created_at"])  # fmt: skip
    op.create_index("ix_workflow_run_window", "workflow_run",
                    ["created_at", "workflow", "status", "duration_ms"])  # fmt: skip
    op.add_column("interaction", sa.Column("workflow", sa.String(200), nullable=True))
    op.execute(
        "UPDATE interaction SET workflow = "
        "(SELECT r.workflow FROM workflow_run r WHERE r.id = interaction.run_id)"
    )
    op.create_index("ix_interaction_decision", "interaction",
                    ["created_at", "purpose", "workflow", "decision_ms"])  # fmt: skip
    op.create_index("ix_interaction_decision_rank", "interaction",
                    ["purpose", "decision_ms", "created_at"])  # fmt: skip
    op.create_index("ix_interaction_workflow_decision", "interaction",
                    ["workflow", "purpose", "decision_ms", "created_at"])  # fmt: skip


def downgrade() -> None:
    for index in (
        "ix_interaction_workflow_decision",
        "ix_interaction_decision_rank",
        "ix_interaction_decision",
    ):
        op.drop_index(index, table_name="interaction")
    with op.batch_alter_table("interaction") as batch:
        batch.drop_column("workflow")
    op.drop_index("ix_workflow_run_window", table_name="workflow_run")
    op.drop_index("ix_workflow_run_duration", table_name="workflow_run")
    op.drop_index("ix_step_run_duration", table_name="step_run")
    op.drop_index("ix_step_run_window", table_name="step_run")
    op.drop_index("ix_step_run_created", table_name="step_run")
    with op.batch_alter_table("step_run") as batch:
        batch.drop_column("run_created_at")
        batch.drop_column("workflow")
    for column, tables in GENERATED.items():
        for table, *_ in tables:
            op.execute(f"ALTER TABLE {table} DROP COLUMN {column}")
