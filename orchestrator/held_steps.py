"""Resumed steps that wait for room in their workflow's share, marked in the database.

A step resumed outside a pass (its question answered, or restarted by recovery) is
`running` and owned by this process from the commit that resumed it. Past its
workflow's share (step_limits.py) it waits in memory until one of the workflow's steps
ends, which can take as long as those steps run. A crash in that wait left it looking
cut off after its answer, so a task that is not idempotent got a retry/skip/fail
question for code that never ran again. So a held step gets `held_at` before it waits,
and loses it in the commit that lets it start (`start`), before its code runs again:
recovery resumes a step it finds held with its answer, as one that had not started
(recovery.py). Parking a step at a question clears it too (people.py), so a mark left
by a step cancelled while held never outlives the step's next question.

Only held steps pay these two writes; a step with room starts as before.
"""

from __future__ import annotations

import logging
from datetime import datetime

import sqlalchemy as sa

from orchestrator import runs
from orchestrator.services import Services
from orchestrator.storage_retry import storage_attempts
from storage.engine import write_transaction
from storage.statuses import StepStatus

log = logging.getLogger(__name__)


def _mine(run_id: str, step_id: str, replica: str) -> tuple[sa.ColumnElement[bool], ...]:
    steps = runs.STEPS
    return (steps.c.run_id == run_id, steps.c.step_id == step_id,
            steps.c.status == StepStatus.RUNNING, steps.c.owner == replica)  # fmt: skip


def hold(services: Services, run_id: str, step_id: str, now: datetime) -> None:
    """Mark a step this process resumed as waiting for room (nothing if it is no longer
    running here: cancelled meanwhile). With storage down it waits unmarked, as before
    marks: the answer is committed, and the step must still start when room comes."""
    stmt = sa.update(runs.STEPS).where(*_mine(run_id, step_id, services.replica))
    try:
        for attempt in storage_attempts():
            with attempt, write_transaction(services.engine) as conn:
                conn.execute(stmt.values(held_at=now))
    except sa.exc.SQLAlchemyError as exc:
        log.warning("run %s: step %s waits for room in its workflow's share unmarked (%s): "
                    "a crash before it starts asks whether it runs again", run_id, step_id,
                    exc)  # fmt: skip


def start(services: Services, run_id: str, step_id: str) -> bool:
    """A held step got room: clear its mark, committed before its code runs again. False
    if it is no longer running here (cancelled, or taken over): then it must not run."""
    stmt = sa.update(runs.STEPS).where(*_mine(run_id, step_id, services.replica))
    for attempt in storage_attempts():
        with attempt, write_transaction(services.engine) as conn:
            done = conn.execute(stmt.values(held_at=None)).rowcount == 1
    return done
