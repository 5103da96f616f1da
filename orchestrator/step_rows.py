"""A new run's step rows, inserted in one statement.

An executemany of one INSERT per step cost PostgreSQL a statement per row: 3.6 ms of
a 64-step run's start, 85-100 ms of a 2,000-step one's (docs/benchmarks.md, session
10). There the step ids go as one array and the server makes the rows (`INSERT ...
SELECT ... FROM unnest(ids)`); SQLite, in-process, keeps the executemany.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.engine import Connection

from storage.models import StepRun
from storage.statuses import StepStatus

STEPS: sa.Table = StepRun.__table__  # type: ignore[attr-defined]
_COLUMNS = ("run_id", "step_id", "status", "attempts", "version", "updated_at", "workflow",
            "run_created_at")  # fmt: skip


def _bind(name: str) -> sa.BindParameter:
    return sa.bindparam(name, type_=STEPS.c[name].type)


# Bound as unbounded strings: a cast to the column's VARCHAR(200)[] would cut a longer id
# short where the column refuses it. In the array's order (its ids, so load_run's order).
_IDS = (
    sa.func.unnest(sa.bindparam("ids", type_=ARRAY(sa.String())))
    .table_valued("id", with_ordinality="n")
    .render_derived(name="ids")
)
_FROM_ARRAY = sa.insert(STEPS).from_select(
    _COLUMNS,
    sa.select(_bind("run_id"), _IDS.c.id, _bind("status"), _bind("attempts"), _bind("version"),
              _bind("updated_at"), _bind("workflow"), _bind("run_created_at"))
    .order_by(_IDS.c.n),
)  # fmt: skip


def insert(
    conn: Connection, run_id: str, workflow: str, step_ids: Iterable[str], now: datetime
) -> None:
    """Pending rows for `step_ids` of a new run."""
    row = {"run_id": run_id, "status": StepStatus.PENDING, "attempts": 0, "version": 0,
           "updated_at": now, "workflow": workflow, "run_created_at": now}  # fmt: skip
    if conn.dialect.name == "postgresql":
        conn.execute(_FROM_ARRAY, {**row, "ids": list(step_ids)})
    else:
        conn.execute(sa.insert(STEPS), [{**row, "step_id": s} for s in step_ids])
