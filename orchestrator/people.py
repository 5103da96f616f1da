"""People's side of a run: resuming a step once its question is answered, deadlines,
reminders and escalations (the timers in orchestrator/timers.py call these)."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from orchestrator import gates, interactions, leases, runs
from orchestrator.runs import SYSTEM
from orchestrator.storage_retry import storage_attempts
from storage.claims import claim
from storage.engine import read_transaction, write_transaction
from storage.models import Interaction
from storage.statuses import InteractionStatus, RunStatus, StepStatus

if TYPE_CHECKING:
    from orchestrator.engine import Orchestrator


def resume_interaction(orch: Orchestrator, iid: str) -> None:
    """Continue the step behind a closed interaction, once, whoever calls."""
    from orchestrator.recovery import apply_recovery

    for attempt in storage_attempts():
        with attempt, read_transaction(orch.engine) as conn:
            row = interactions.load_interaction(conn, iid)
    if row is None or row["status"] == InteractionStatus.PENDING:
        return
    # Under the run's lock: an advance pass that read the step as waiting would
    # otherwise settle the run as waiting after this made the step run again.
    with orch._run_lock(row["run_id"]):
        for attempt in storage_attempts():
            with attempt, write_transaction(orch.engine) as conn:
                row = interactions.load_interaction(conn, iid)  # again: _paused may have set it
                assert row is not None
                won = runs.set_step(
                    conn, row["run_id"], row["step_id"], expect=[StepStatus.WAITING],
                    status=StepStatus.RUNNING, updated_at=orch.clock(),
                    **leases.ownership(orch.replica, orch.clock()),
                )  # fmt: skip
                if won:
                    runs.set_run(conn, row["run_id"], expect=[RunStatus.WAITING],
                                 status=RunStatus.RUNNING, updated_at=orch.clock())  # fmt: skip
                thread_id = conn.execute(
                    sa.select(runs.STEPS.c.thread_id).where(
                        runs.STEPS.c.run_id == row["run_id"],
                        runs.STEPS.c.step_id == row["step_id"],
                    )
                ).scalar()
    if not won:
        return
    orch._step_changed(row["run_id"], row["step_id"], status=StepStatus.RUNNING)
    if row["purpose"] == "recovery":
        apply_recovery(orch, row)
        return
    resolution = {
        "status": row["status"], "value": row["answer"], "by": row["answered_by"],
        "responses": row["responses"],
    }  # fmt: skip
    orch.submit(
        orch._execute, row["run_id"], row["step_id"], thread_id,
        {row["interrupt_id"]: resolution},
    )  # fmt: skip


def expire(orch: Orchestrator, iid: str) -> None:
    """Apply an interaction's deadline action, unless someone answered first."""
    now = orch.clock()
    for attempt in storage_attempts():
        with attempt, write_transaction(orch.engine) as conn:
            row = interactions.load_interaction(conn, iid)
            if row is None or row["status"] != InteractionStatus.PENDING:
                return
            outcome = gates.deadline_outcome(row, now)
            if not claim(
                conn, Interaction, iid, expect=[InteractionStatus.PENDING],
                version=row["version"],
                values={"status": outcome.status, "answer": outcome.answer,
                        "responses": outcome.responses, "answered_by": SYSTEM,
                        "answered_at": now},
            ):  # fmt: skip
                return
            runs.audit(conn, SYSTEM, "interaction.deadline", now=now, run_id=row["run_id"],
                       interaction_id=iid, outcome=outcome.status)  # fmt: skip
            row = interactions.load_interaction(conn, iid)
    assert row is not None
    orch.timers.forget(iid)
    orch.front_end.interaction_updated(orch.view(row["run_id"]), interactions.interaction_view(row))
    resume_interaction(orch, iid)


def remind(orch: Orchestrator, iid: str) -> None:
    for attempt in storage_attempts():
        with attempt, read_transaction(orch.engine) as conn:
            row = interactions.load_interaction(conn, iid)
    if row is None or row["status"] != InteractionStatus.PENDING:
        orch.timers.forget(iid)
        return
    orch.front_end.reminder(orch.view(row["run_id"]), interactions.interaction_view(row))


def escalate(orch: Orchestrator, iid: str) -> None:
    """Tell the escalation contacts of a still-open interaction, once across replicas."""
    now = orch.clock()
    for attempt in storage_attempts():
        with attempt, write_transaction(orch.engine) as conn:
            won = _claim_escalation(conn, iid, now)
            row = interactions.load_interaction(conn, iid)
            if won and row is not None:
                runs.audit(conn, SYSTEM, "interaction.escalated", now=now,
                           run_id=row["run_id"], interaction_id=iid,
                           to=row["escalate_to"])  # fmt: skip
    if won and row is not None:
        orch.front_end.escalated(orch.view(row["run_id"]), interactions.interaction_view(row))


def _claim_escalation(conn: Any, iid: str, now: datetime) -> bool:
    """Mark a still-open interaction escalated; True for the one caller that did."""
    stmt = (
        sa.update(interactions.INTERACTIONS)
        .where(
            interactions.INTERACTIONS.c.id == iid,
            interactions.INTERACTIONS.c.status == InteractionStatus.PENDING,
            interactions.INTERACTIONS.c.escalated_at.is_(None),
        )
        .values(escalated_at=now)
    )
    return conn.execute(stmt).rowcount == 1
