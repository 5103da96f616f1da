"""What the transaction that answers a question reads, in one statement on PostgreSQL
(on SQLite the question is read before it, `read_question`, where that costs nothing).

The question, its step's newest checkpoint (a gate's finished checkpoint follows it) and
its run with every step, the run's row locked (FOR UPDATE OF it alone): what the answer,
the gate's end and the run's next pass need. The question's run is found by the question
itself, so nothing is read before the transaction; the steps come as one array per
column (one row whatever the run's width). This was three statements, one of them
before the transaction: the question with the checkpoint, the run, its steps.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import aggregate_order_by, array_agg
from sqlalchemy.engine import Connection

from orchestrator.interactions import INTERACTIONS
from orchestrator.locked_run import RUN_COLUMNS, STEP_COLUMNS, step_view
from orchestrator.protocol import RunView
from orchestrator.runs import RUNS, STEPS
from storage import checkpoint_queries

# A question, and the newest checkpoint of its step's thread (NULLs if none): read before
# the answer's transaction where that costs no round trip (SQLite).
_QUESTION_HEAD = (
    sa.select(INTERACTIONS, *checkpoint_queries.ROW_COLUMNS)
    .select_from(
        INTERACTIONS.outerjoin(STEPS, (STEPS.c.run_id == INTERACTIONS.c.run_id)
                               & (STEPS.c.step_id == INTERACTIONS.c.step_id))
        .outerjoin(checkpoint_queries.CHECKPOINTS,
                   (checkpoint_queries.CHECKPOINTS.c.thread_id == STEPS.c.thread_id)
                   & (checkpoint_queries.CHECKPOINTS.c.checkpoint_ns == ""))
    )
    .where(INTERACTIONS.c.id == sa.bindparam("iid"))
    .order_by(checkpoint_queries.CHECKPOINTS.c.checkpoint_id.desc())
    .limit(1)
)  # fmt: skip
_ASKED_STEP = STEPS.alias("asked_step")
_CHECKPOINTS = checkpoint_queries.CHECKPOINTS
_OLDER = _CHECKPOINTS.alias("older")
_NEWEST = (
    sa.select(sa.func.max(_OLDER.c.checkpoint_id))
    .where(_OLDER.c.thread_id == _ASKED_STEP.c.thread_id, _OLDER.c.checkpoint_ns == "")
    .scalar_subquery()
)
_STEP_ARRAYS = (
    sa.select(
        *(array_agg(aggregate_order_by(STEPS.c[c], STEPS.c.id)).label(f"s_{c}")
          for c in STEP_COLUMNS),
        array_agg(aggregate_order_by(sa.cast(STEPS.c.outputs, sa.Text), STEPS.c.id))
        .label("s_outputs"),
    )
    .where(STEPS.c.run_id == RUNS.c.id)
    .lateral("steps")
)  # fmt: skip
_READ = (
    sa.select(
        INTERACTIONS, *checkpoint_queries.ROW_COLUMNS,
        *(RUNS.c[c].label(f"r_{c}") for c in RUN_COLUMNS), _STEP_ARRAYS,
    )
    .select_from(
        INTERACTIONS.join(RUNS, RUNS.c.id == INTERACTIONS.c.run_id)
        .outerjoin(_ASKED_STEP, (_ASKED_STEP.c.run_id == INTERACTIONS.c.run_id)
                   & (_ASKED_STEP.c.step_id == INTERACTIONS.c.step_id))
        .outerjoin(_CHECKPOINTS, (_CHECKPOINTS.c.thread_id == _ASKED_STEP.c.thread_id)
                   & (_CHECKPOINTS.c.checkpoint_ns == "")
                   & (_CHECKPOINTS.c.checkpoint_id == _NEWEST))
        .join(_STEP_ARRAYS, sa.true())
    )
    .where(INTERACTIONS.c.id == sa.bindparam("iid"))
    .with_for_update(of=RUNS)
)  # fmt: skip


@dataclass(frozen=True)
class Asked:
    """A question and its run as the answer's transaction read them (`run` None: not
    read). `head_row`: its step's newest checkpoint (the columns of
    `checkpoint_queries.ROW_COLUMNS`), or None."""

    row: Mapping[str, Any]
    run: RunView | None
    head_row: Any


def read_question(conn: Connection, iid: str) -> Asked | None:
    """Question `iid` with its step's newest checkpoint, not its run; None if none."""
    result = conn.execute(_QUESTION_HEAD, {"iid": iid})
    names, found = result.keys(), result.first()
    if found is None:
        return None
    values = dict(zip(names, found, strict=True))
    row = {c.name: values[c.name] for c in INTERACTIONS.c}
    return Asked(row, None, None if found.checkpoint_id is None else found)


def read_asked(conn: Connection, iid: str) -> Asked | None:
    """Question `iid` and its run, the run's row locked until the transaction ends
    (PostgreSQL only); None if there is no such question."""
    result = conn.execute(_READ, {"iid": iid})
    names, found = result.keys(), result.first()
    if found is None:
        return None
    values = dict(zip(names, found, strict=True))
    row = {c.name: values[c.name] for c in INTERACTIONS.c}
    run_id, workflow, status, params, started_by, channel, thread_ts, error, digest, created = (
        values[f"r_{c}"] for c in RUN_COLUMNS
    )
    columns = [values[f"s_{c}"] or [] for c in (*STEP_COLUMNS, "outputs")]
    run = RunView(
        id=run_id, workflow=workflow, status=status, params=params, started_by=started_by,
        channel=channel, thread_ts=thread_ts, error=error, digest=digest, created_at=created,
        steps=tuple(step_view(*values) for values in zip(*columns, strict=True)),
    )  # fmt: skip
    return Asked(row, run, None if found.checkpoint_id is None else found)
