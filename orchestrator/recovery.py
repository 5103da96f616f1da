"""After a crash or restart: put every unfinished step back on a safe path.

A step found `running` was cut off mid-flight. Its LangGraph thread tells how far it got:
- finished: its result was saved; record it (a finished step never runs again);
- interrupted: it was pausing for a person; it waits again;
- otherwise (no checkpoint, or one from before it finished) it may have done part of
  its work: it is run again if it is a gate or declared `idempotent: true`, and for
  any other step a person decides: retry, skip or fail. A step that cannot pause runs
  without a graph, so it never has a checkpoint and always takes this branch: until
  the pass that records its result commits, it is not finished. A step is marked
  running only by the worker about to run it (a step still queued at a crash is
  `pending`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from orchestrator import gates, interactions, leases, runs
from orchestrator.errors import OrchestratorError
from orchestrator.storage_retry import storage_attempts
from storage.engine import dialect_insert, read_transaction, write_transaction
from storage.statuses import InteractionKind, InteractionStatus, RunStatus, StepStatus

if TYPE_CHECKING:
    from orchestrator.engine import Orchestrator


def recover_run(orch: Orchestrator, run_id: str) -> None:
    run = orch.view(run_id)
    wf = orch.workflow_of(run)
    threads: dict[str, str | None] = {}
    if any(view.status == StepStatus.RUNNING for view in run.steps):  # the sweep's usual case: none
        with read_transaction(orch.engine) as conn:
            threads = dict(
                conn.execute(
                    sa.select(runs.STEPS.c.step_id, runs.STEPS.c.thread_id).where(
                        runs.STEPS.c.run_id == run_id
                    )
                ).all()
            )
    for view in run.steps:
        if view.status == StepStatus.WAITING:
            with read_transaction(orch.engine) as conn:
                row = interactions.step_interaction(conn, run_id, view.step_id)
            if row is not None and row["status"] != InteractionStatus.PENDING:
                orch.resume_interaction(row["id"])
        elif view.status == StepStatus.RUNNING and leases.claim_orphan(
            orch.engine, orch.replica, run_id, view.step_id, orch.clock()
        ):
            _recover_step(orch, run_id, wf.step(view.step_id), threads.get(view.step_id))
    orch.advance(run_id)


def _recover_step(orch: Orchestrator, run_id: str, step: Any, thread_id: str | None) -> None:
    state, detail = orch.graph.inspect(thread_id) if thread_id else ("new", None)
    if state == "finished":
        orch._finish(run_id, step.id, StepStatus.SUCCEEDED, outputs=detail)
    elif state == "interrupted" and not _ran_on_after_answer(orch, step, detail):
        orch._paused(run_id, step.id, detail)
    elif step.is_gate or step.idempotent:
        # The same thread id: a gate finds its interaction again instead of opening another.
        orch.submit(orch._execute, run_id, step.id, thread_id, None)
    else:
        _ask_recovery(orch, run_id, step.id, thread_id or "")


def _ran_on_after_answer(orch: Orchestrator, step: Any, pending: Any) -> bool:
    """Whether a task cut off at a question had been resumed with its answer: its thread's
    checkpoint still shows the question (a step's checkpoint is written when the step
    ends), but the question had finished pausing (`interrupt_id` is set in the commit
    that parks the step) and was answered, and the step ran again. Then the code after
    the question may have run, so a task that is not idempotent is a person's call.
    A gate's body after the question only reads the answer: it simply resumes."""
    if step.is_gate or step.idempotent:
        return False
    with read_transaction(orch.engine) as conn:
        row = interactions.load_interaction(conn, pending.value["interaction_id"])
    return (
        row is not None
        and row["interrupt_id"] is not None
        and row["status"] != InteractionStatus.PENDING
    )


def _ask_recovery(orch: Orchestrator, run_id: str, step_id: str, thread_id: str) -> None:
    now = orch.clock()
    iid = interactions.interaction_id(thread_id, 0)
    for attempt in storage_attempts():
        with attempt, write_transaction(orch.engine) as conn:
            runs.set_step(conn, run_id, step_id, expect=[StepStatus.RUNNING],
                          status=StepStatus.WAITING, updated_at=now)  # fmt: skip
            conn.execute(
                dialect_insert(conn)(interactions.INTERACTIONS)
                .values(
                    id=iid, run_id=run_id, step_id=step_id, kind=InteractionKind.DECISION,
                    purpose="recovery", status=InteractionStatus.PENDING, responses=[],
                    prompt=(f"Step {step_id} was running when opsloop stopped and is not marked "
                            "idempotent. Run it again, skip it, or fail it?"),
                    options=list(gates.RECOVERY_OPTIONS), allowed_users=[], allowed_groups=[],
                    required_approvals=1, allow_requester=True, version=0, created_at=now,
                )
                .on_conflict_do_nothing()
            )  # fmt: skip
            runs.audit(conn, runs.SYSTEM, "step.interrupted_by_crash", now=now, run_id=run_id,
                       interaction_id=iid, step=step_id)  # fmt: skip
            row = interactions.load_interaction(conn, iid)
    assert row is not None
    orch._step_changed(run_id, step_id)
    if row["status"] == InteractionStatus.PENDING:
        orch.front_end.interaction_opened(orch.view(run_id), interactions.interaction_view(row))
    else:
        orch.resume_interaction(iid)


def apply_recovery(orch: Orchestrator, row: Mapping[str, Any]) -> None:
    """The answer to a recovery question: the step (now `running`) retries, skips or fails."""
    run_id, step_id, choice = row["run_id"], row["step_id"], row["answer"]
    if choice == "retry":
        for attempt in storage_attempts():
            with attempt, write_transaction(orch.engine) as conn:
                runs.set_step(conn, run_id, step_id, expect=[StepStatus.RUNNING],
                              status=StepStatus.PENDING, updated_at=orch.clock())  # fmt: skip
    else:
        status = StepStatus.SKIPPED if choice == "skip" else StepStatus.FAILED
        error = None if choice == "skip" else f"failed by {row['answered_by']} after a crash"
        orch._finish(run_id, step_id, status, error=error)
    orch.advance(run_id)


def retry_run(orch: Orchestrator, run_id: str, step_id: str | None, by: str) -> None:
    """Reset a failed step (or every failed one) and what it left skipped or cancelled."""
    run = orch.view(run_id)
    wf = orch.workflow_of(run)
    failed = [s.step_id for s in run.steps if s.status == StepStatus.FAILED]
    targets = [step_id] if step_id else failed
    if step_id and step_id not in {s.step_id for s in run.steps}:
        steps = ", ".join(s.step_id for s in run.steps)
        raise OrchestratorError(f"run {run_id} has no step {step_id!r}; its steps: {steps}")
    if step_id and step_id not in failed:
        known = ", ".join(failed) or "none"
        raise OrchestratorError(f"step {step_id!r} has not failed; failed steps: {known}")
    if not targets:
        raise OrchestratorError(f"run {run_id} has no failed step to retry")
    reset = set(targets)
    for level in wf.levels():
        for sid in level:
            if any(n in reset for n in wf.step(sid).needs):
                reset.add(sid)
    now = orch.clock()
    with write_transaction(orch.engine) as conn:
        for sid in reset:
            runs.set_step(
                conn, run_id, sid,
                expect=[StepStatus.FAILED, StepStatus.SKIPPED, StepStatus.CANCELLED],
                status=StepStatus.PENDING, error=None, outputs=None, finished_at=None,
                updated_at=now,
            )  # fmt: skip
        runs.set_run(  # succeeded too: a step that failed with continue_on_error
            conn, run_id, expect=[RunStatus.FAILED, RunStatus.CANCELLED, RunStatus.SUCCEEDED],
            status=RunStatus.RUNNING, error=None, finished_at=None, updated_at=now,
        )  # fmt: skip
        runs.audit(conn, by, "run.retried", now=now, run_id=run_id, steps=sorted(reset))
