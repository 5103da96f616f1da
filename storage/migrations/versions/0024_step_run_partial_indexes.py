"""Fewer index entries per step change on PostgreSQL.

Every change of a step's status (its claim, its end) made a new row version with an
entry in each of step_run's seven indexes: 0.21 ms of the server's time per claim on
this machine against 0.09 ms with three (docs/benchmarks.md, session 10). Now:

- `ix_step_run_run_id` is dropped (both databases): `uq_step_run_run_step` starts with
  `run_id` and serves the same lookups;
- on PostgreSQL the three report indexes of 0010 hold finished steps only (`duration_ms
  IS NOT NULL`, which the report queries over them state; `ix_step_run_created` failed
  steps too, which a short window's failure count seeks), and `ix_step_run_status`
  only the statuses looked for across runs (a replica's running steps for its
  heartbeat, waiting steps, failures for reports). A claim adds entries to the primary
  key, `uq_step_run_run_step` and the status index; a success to the primary key,
  `uq_step_run_run_step` and the report indexes.

SQLite keeps its full indexes (its planner uses a partial index only where a query
names the predicate's values as literals); dropping an index there rebuilds nothing,
so the triggers of migration 0018 stay.

Building the indexes makes writes to step_run wait for as long as PostgreSQL needs to
read it (seconds for millions of steps; reads go on until the final swap of names):
run `opsloop db upgrade` in a quiet moment rather than letting `serve` upgrade on start
(docs/storage.md).

Revision ID: 0024
Revises: 0023
"""

from alembic import op

revision = "0024"
down_revision = "0023"
branch_labels = None
depends_on = None

FINISHED = "duration_ms IS NOT NULL"
# A step failed before it started has no duration; a report finds a short window's
# failures by ix_step_run_created (orchestrator/reports/counts.py).
FINISHED_OR_FAILED = "duration_ms IS NOT NULL OR status = 'failed'"
SOUGHT = "status IN ('running', 'waiting', 'failed')"
# name: (columns, predicate on PostgreSQL)
PARTIAL = {
    "ix_step_run_window": (["workflow", "step_id", "run_created_at", "duration_ms"], FINISHED),
    "ix_step_run_created": (["run_created_at", "workflow", "step_id", "duration_ms"],
                            FINISHED_OR_FAILED),
    "ix_step_run_duration": (["workflow", "step_id", "duration_ms", "run_created_at"], FINISHED),
    "ix_step_run_status": (["status"], SOUGHT),
}  # fmt: skip


def _replace(partial: bool) -> None:
    """Build each index anew under a temporary name, then swap the names. Building takes
    a SHARE lock (writes wait, reads go on); dropping an index takes an ACCESS EXCLUSIVE
    lock that the migration's transaction keeps until it commits, so every drop comes
    last: reads of step_run wait only for the drops and renames, not for the builds."""
    for name, (columns, where) in PARTIAL.items():
        op.execute(f"DROP INDEX IF EXISTS {name}_new")  # left by hand: would stop the build
        op.create_index(f"{name}_new", "step_run", columns,
                        postgresql_where=where if partial else None)  # fmt: skip
    for name in PARTIAL:
        op.drop_index(name, table_name="step_run")
        op.execute(f"ALTER INDEX {name}_new RENAME TO {name}")


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        _replace(partial=True)
    op.drop_index("ix_step_run_run_id", table_name="step_run")


def downgrade() -> None:
    op.create_index("ix_step_run_run_id", "step_run", ["run_id"])
    if op.get_bind().dialect.name == "postgresql":
        _replace(partial=False)
