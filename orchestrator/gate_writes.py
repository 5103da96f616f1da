"""A gate's answer and the gate's end as one statement on PostgreSQL.

The answer that closes a gate writes, in its transaction (resuming.finish_gate): the
question's claim and its audit entry (answer_writes.py), the gate step's end, its
thread's finished checkpoint and the run's wake-up; each was a round trip of its own,
and each statement's trip through SQLAlchemy cost more CPU than PostgreSQL takes to run
it. Here they are one statement of data-modifying CTEs, each part on the one before:

    WITH q AS (UPDATE interaction ... WHERE pending at the version read RETURNING id),
         a AS (INSERT INTO audit_log ... SELECT ... FROM q),
         g AS (UPDATE step_run ... WHERE waiting AND EXISTS (SELECT FROM q) RETURNING thread_id),
         c AS (INSERT INTO checkpoint ... SELECT ... FROM g WHERE g.thread_id = the head's),
         w AS (UPDATE workflow_run ... WHERE EXISTS (SELECT FROM g) RETURNING status, version)
    SELECT the count of each, the gate's thread, the run's status and version

The same rows, conditions and order as the separate statements (the run's row is
locked before it by the caller; then the question, the step, the run), so the same
guarantees: a claim that lost writes nothing (the caller reads the question again); a
gate that was not waiting is not ended, and then the answer alone is recorded.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import Connection

from orchestrator import answer_writes
from orchestrator.answer_writes import AnswerWrites
from orchestrator.runs import AUDIT, RUNS, STEPS
from storage import prepared
from storage.checkpoint_queries import CHECKPOINTS
from storage.statuses import RunStatus, StepStatus

ENDED_COLUMNS = ("status", "outputs", "error")  # of the gate's step row
CHECKPOINT_COLUMNS = ("thread_id", "checkpoint_ns", "checkpoint_id", "parent_checkpoint_id",
                      "run_id", "type", "checkpoint", "metadata")  # fmt: skip


@dataclass(frozen=True)
class Sent:
    """What the statement did. `thread_id` None: the gate was not waiting (not ended)."""

    claimed: bool
    thread_id: str | None
    checkpointed: bool
    status: str | None  # the run's, after its wake-up (None if the gate was not ended)
    version: int | None


def send(
    conn: Connection, writes: AnswerWrites, run_id: str, step_id: str,
    ended: Mapping[str, Any], now: Any, checkpoint: Mapping[str, Any] | None,
) -> Sent:  # fmt: skip
    """Claim the question, audit the answer, end the waiting gate `step_id` with `ended`
    (ENDED_COLUMNS), insert `checkpoint` (a row of CHECKPOINT_COLUMNS) if the gate's
    thread is the one it names, and wake run `run_id`: in one statement."""
    params = writes.params()
    params.update({"g_run": run_id, "g_step": step_id, "g_now": now})
    params.update((f"g_{name}", ended[name]) for name in ENDED_COLUMNS)
    if checkpoint is not None:
        params.update((f"c_{name}", checkpoint[name]) for name in CHECKPOINT_COLUMNS)
    statement = _statement(writes.columns, checkpoint is not None)
    claimed, _audited, finished, thread_id, stored, status, version = prepared.execute(
        conn, statement, params
    ).one()
    return Sent(claimed == 1, thread_id if finished else None, stored == 1, status, version)


@functools.cache
def _statement(claimed: tuple[str, ...], with_checkpoint: bool) -> sa.Select:
    """Built once per shape: building a statement costs more than running it."""
    q = answer_writes.new_claim_update(claimed).returning(sa.literal_column("id")).cte("q")
    a = (
        sa.insert(AUDIT)
        .from_select(answer_writes.AUDIT_COLUMNS, answer_writes.audit_values().select_from(q))
        .returning(AUDIT.c.id)
        .cte("a")
    )
    ended = {c: sa.bindparam(f"g_{c}", type_=STEPS.c[c].type) for c in ENDED_COLUMNS}
    g = (
        sa.update(STEPS)
        .where(STEPS.c.run_id == sa.bindparam("g_run"), STEPS.c.step_id == sa.bindparam("g_step"),
               STEPS.c.status == StepStatus.WAITING, sa.exists(sa.select(q.c.id)))
        .values({**ended, "finished_at": sa.bindparam("g_now"),
                 "updated_at": sa.bindparam("g_now"), "version": STEPS.c.version + 1})
        .returning(STEPS.c.thread_id)
        .cte("g")
    )  # fmt: skip
    waiting = RUNS.c.status == RunStatus.WAITING
    # Typed: prepared binds one parameter per name, and a CASE gives its bind no type.
    g_now = sa.bindparam("g_now", type_=RUNS.c.updated_at.type)
    w = (
        sa.update(RUNS)
        .where(RUNS.c.id == sa.bindparam("g_run"), sa.exists(sa.select(g.c.thread_id)))
        .values(version=RUNS.c.version + 1,
                status=sa.case((waiting, RunStatus.RUNNING), else_=RUNS.c.status),
                updated_at=sa.case((waiting, g_now), else_=RUNS.c.updated_at))
        .returning(RUNS.c.status, RUNS.c.version)
        .cte("w")
    )  # fmt: skip
    stored: Any = sa.literal(0)
    if with_checkpoint:
        stored = _count(_checkpoint_insert(g))
    return sa.select(
        _count(q), _count(a), _count(g), sa.select(g.c.thread_id).scalar_subquery(), stored,
        sa.select(w.c.status).scalar_subquery(), sa.select(w.c.version).scalar_subquery(),
    )  # fmt: skip


def _checkpoint_insert(g: sa.CTE) -> sa.CTE:
    """INSERT INTO checkpoint ... SELECT ... FROM g WHERE g's thread is the row's; as the
    checkpointer's own insert (storage/checkpoint_queries.py), an upsert."""
    binds = {c: sa.bindparam(f"c_{c}", type_=CHECKPOINTS.c[c].type) for c in CHECKPOINT_COLUMNS}
    rows = sa.select(*binds.values()).select_from(g).where(g.c.thread_id == binds["thread_id"])
    insert = postgresql.insert(CHECKPOINTS).from_select(CHECKPOINT_COLUMNS, rows)
    return (
        insert.on_conflict_do_update(
            index_elements=["thread_id", "checkpoint_ns", "checkpoint_id"],
            set_={c: insert.excluded[c] for c in ("type", "checkpoint", "metadata", "run_id")},
        )
        .returning(CHECKPOINTS.c.thread_id)
        .cte("c")
    )


def _count(cte: sa.CTE) -> sa.ScalarSelect[Any]:
    return sa.select(sa.func.count()).select_from(cte).scalar_subquery()
