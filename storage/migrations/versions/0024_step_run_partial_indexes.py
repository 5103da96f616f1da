"""Fewer index entries per step change on PostgreSQL.

Every change of a step's status (its claim, its end) made a new row version with an
entry in each of step_run's seven indexes: 0.21 ms of the server's time per claim on
this machine against 0.09 ms with three (docs/benchmarks.md, session 10). Now:

- `ix_step_run_run_id` is dropped (both databases): `uq_step_run_run_step` starts with
  `run_id` and serves the same lookups;
- on PostgreSQL the three report indexes of 0010 hold finished steps only (`duration_ms
  IS NOT NULL`, which every report query over them states), and `ix_step_run_status`
  only the statuses looked for across runs (a replica's running steps for its
  heartbeat, waiting steps, failures for reports). A claim adds entries to the primary
  key, `uq_step_run_run_step` and the status index; a success to the primary key,
  `uq_step_run_run_step` and the report indexes.

SQLite keeps its full indexes (its planner uses a partial index only where a query
names the predicate's values as literals); dropping an index there rebuilds nothing,
so the triggers of migration 0018 stay.

Building the indexes takes a write lock on step_run for as long as PostgreSQL needs to
read it (seconds for millions of steps): run `opsloop db upgrade` in a quiet moment
(docs/operations.md).

Revision ID: 0024
Revises: 0023
"""

from alembic import op

revision = "0024"
down_revision = "0023"
branch_labels = None
depends_on = None

REPORTS = {
    "ix_step_run_window": ["workflow", "step_id", "run_created_at", "duration_ms"],
    "ix_step_run_created": ["run_created_at", "workflow", "step_id", "duration_ms"],
    "ix_step_run_duration": ["workflow", "step_id", "duration_ms", "run_created_at"],
}
FINISHED = "duration_ms IS NOT NULL"
SOUGHT = "status IN ('running', 'waiting', 'failed')"


def _rebuild(name: str, columns: list[str], where: str | None) -> None:
    op.drop_index(name, table_name="step_run")
    op.create_index(name, "step_run", columns, postgresql_where=where)


def upgrade() -> None:
    op.drop_index("ix_step_run_run_id", table_name="step_run")
    if op.get_bind().dialect.name != "postgresql":
        return
    for name, columns in REPORTS.items():
        _rebuild(name, columns, FINISHED)
    _rebuild("ix_step_run_status", ["status"], SOUGHT)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for name, columns in REPORTS.items():
            _rebuild(name, columns, None)
        _rebuild("ix_step_run_status", ["status"], None)
    op.create_index("ix_step_run_run_id", "step_run", ["run_id"])
