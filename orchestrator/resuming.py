"""Claiming the step behind a closed question, in the transaction that closed it.

An answer that closed a question used to commit, then read the question three more
times and claim its step in a transaction of its own, and read the run three times
(for the front end, the step's running state and the step itself) before the step's
LangGraph thread resumed: about 50 round trips on PostgreSQL (bench/answer_path.py).
Now the answer's transaction reads the run once and claims the waiting step (waiting ->
running, owned by this process) with one UPDATE that returns its thread, and one that
sets the run running and raises its version; what it read travels on with the step.

The run was read with its row locked, so no change that raises its version committed
since: the view after the claim is the run at the version the claim returns, and the
next pass starts from it (`RunState`, runstate.py) instead of reading the run again.

Lock order: the run's row first (`load_run(lock=True)`, FOR UPDATE on PostgreSQL), then
the question, then the step, as `People.park` does; so an answer racing the commit that
parks its step, or a cancel, waits for it instead of deadlocking.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from orchestrator import leases, runs
from orchestrator.protocol import RunView
from storage.statuses import RunStatus, StepStatus

_CLAIM = (
    sa.update(runs.STEPS)
    .where(
        runs.STEPS.c.run_id == sa.bindparam("b_run"),
        runs.STEPS.c.step_id == sa.bindparam("b_step"),
        runs.STEPS.c.status == StepStatus.WAITING,
    )
    .values(
        status=StepStatus.RUNNING,
        updated_at=sa.bindparam("b_now"),
        owner=sa.bindparam("b_owner"),
        lease_until=sa.bindparam("b_lease"),
        version=runs.STEPS.c.version + 1,
    )
    .returning(runs.STEPS.c.thread_id)
)
_WAITING = runs.RUNS.c.status == RunStatus.WAITING
# The run runs again if it only waited, and its version goes up either way (a step changed).
_WAKE = (
    sa.update(runs.RUNS)
    .where(runs.RUNS.c.id == sa.bindparam("b_run"))
    .values(
        version=runs.RUNS.c.version + 1,
        status=sa.case((_WAITING, RunStatus.RUNNING), else_=runs.RUNS.c.status),
        updated_at=sa.case((_WAITING, sa.bindparam("b_now")), else_=runs.RUNS.c.updated_at),
    )
    .returning(runs.RUNS.c.status, runs.RUNS.c.version)
)


@dataclass(frozen=True)
class Resumed:
    """A step claimed to resume: the run as the claim left it, and the step's thread."""

    run: RunView
    step_id: str
    thread_id: str
    version: int  # the run's, after the claim: `run` is the run at this version


def claim_step(
    conn: Connection, run: RunView, step_id: str, now: datetime, replica: str
) -> Resumed | None:
    """Move `step_id` waiting -> running for this process; None if it was not waiting
    (another caller resumed it, or the commit that parks it has not come yet)."""
    owned = leases.ownership(replica, now)
    claimed = conn.execute(
        _CLAIM,
        {
            "b_run": run.id,
            "b_step": step_id,
            "b_now": now,
            "b_owner": owned["owner"],
            "b_lease": owned["lease_until"],
        },
    ).first()
    if claimed is None:
        return None
    status, version = conn.execute(_WAKE, {"b_run": run.id, "b_now": now}).one()
    view = replace(run.with_step(step_id, status=StepStatus.RUNNING), status=status)
    return Resumed(view, step_id, claimed[0] or "", version)
