"""A run read with its row locked, its steps in the same round trip (PostgreSQL).

The transaction that answers a question locks the run's row first, as every transaction
that changes a run and its question does (resuming.py), and reads the run for what
follows the answer. `runs.load_run(lock=True)` does that in two statements (the run, FOR
UPDATE; its steps); here it is one, the run's columns beside each of its steps (FOR
UPDATE OF the run only). On SQLite, whose writers queue anyway, it is `load_run`.
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from orchestrator import runs
from orchestrator.protocol import RunView
from orchestrator.runs import RUNS, STEPS, step_view

RUN_COLUMNS = ("id", "workflow", "status", "params", "started_by", "channel", "thread_ts",
                "error", "definition_hash", "created_at")  # fmt: skip
STEP_COLUMNS = ("step_id", "status", "attempts", "started_at", "finished_at", "error")
_LOCKED = (
    sa.select(*(RUNS.c[c] for c in RUN_COLUMNS), *(STEPS.c[c] for c in STEP_COLUMNS),
              sa.cast(STEPS.c.outputs, sa.Text))  # parsed here, as runs.load_run does
    .select_from(RUNS.outerjoin(STEPS, STEPS.c.run_id == RUNS.c.id))
    .where(RUNS.c.id == sa.bindparam("run_id"))
    .order_by(STEPS.c.id)
    .with_for_update(of=RUNS)
)  # fmt: skip


def load_locked(conn: Connection, run_id: str) -> RunView | None:
    """`runs.load_run(conn, run_id, lock=True)`, in one round trip on PostgreSQL."""
    if conn.dialect.name != "postgresql":
        return runs.load_run(conn, run_id, lock=True)
    rows = conn.execute(_LOCKED, {"run_id": run_id}).all()
    if not rows:
        return None
    run_id, workflow, status, params, started_by, channel, thread_ts, error, digest, created = rows[
        0
    ][: len(RUN_COLUMNS)]
    steps = tuple(step_view(*row[len(RUN_COLUMNS) :]) for row in rows if row.step_id is not None)
    return RunView(
        id=run_id, workflow=workflow, status=status, params=params, started_by=started_by,
        channel=channel, thread_ts=thread_ts, error=error, steps=steps, digest=digest,
        created_at=created,
    )  # fmt: skip
