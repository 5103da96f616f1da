"""After a crash or restart: put every unfinished step back on a safe path.

A step found `running` was cut off mid-flight. Its LangGraph thread tells how far it got:
- finished: its result was saved; record it (a finished step never runs again);
- interrupted: it was pausing for a person; it waits again (or, answered, resumes). A
  task resumed with its answer may have run on past it: a person decides, as below;
  unless it was marked held (held_steps.py: it waited for room in its workflow's share,
  and its code had not run again), then it resumes with its answer;
- otherwise (no checkpoint, or one from before it finished) it may have done part of
  its work: it is run again if it is a gate or declared `idempotent: true`, and for
  any other step a person decides: retry, skip or fail. A step that cannot pause runs
  without a graph, so it never has a checkpoint and always takes this branch: until
  the pass that records its result commits, it is not finished. A step is marked
  running only when a worker is free to run it (a step waiting for one at a crash is
  `pending`).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import sqlalchemy as sa

from orchestrator import gates, interactions, leases, replicas, runs
from orchestrator.advancing import Advancer
from orchestrator.changes import ChangeWatch
from orchestrator.errors import OrchestratorError
from orchestrator.live import LiveRuns
from orchestrator.people import People
from orchestrator.question_watch import QuestionWatch
from orchestrator.services import Services
from orchestrator.storable import storable
from orchestrator.storage_retry import storage_attempts
from orchestrator.workflow.definitions import Step
from storage.engine import dialect_insert, read_transaction, write_transaction
from storage.statuses import InteractionKind, InteractionStatus, RunStatus, StepStatus

log = logging.getLogger(__name__)


class Recovery:
    """Takes over unfinished runs, answers recovery questions, and retries failed steps."""

    def __init__(
        self, services: Services, live: LiveRuns, advancer: Advancer, people: People,
        changes: ChangeWatch,
    ) -> None:  # fmt: skip
        self._services = services
        self._live = live
        self._advancer = advancer
        self._people = people
        self._beating = False  # this process sweeps: it counts as a replica serving the db
        self._questions = QuestionWatch(services.engine, people, changes)
        self._told: set[str] = set()  # runs that cannot continue, said once each

    def sweep(self) -> None:
        """Continue unfinished runs: steps whose process is gone, answers not yet acted on.

        Runs at start and then every lease period, so a replica that dies is
        taken over by the others; steps a live process runs are left alone. A run
        that only waits for people is not read at all: nothing in it can move until
        an answer or a timer (horizon.py) comes, so ten thousand of them cost a sweep
        one query.
        """
        self._questions.start()  # before the look at every open question below
        services = self._services
        try:  # the gauge of replicas alive; a failure here must not stop the sweep
            replicas.beat(services.engine, services.replica, services.clock.now())
            self._beating = True
        except Exception as exc:
            log.warning("could not record replica %s as alive: %s", services.replica, exc)
        with read_transaction(self._services.engine) as conn:
            unfinished = runs_to_sweep(conn)
        stuck = set()
        for run_id in unfinished:
            try:
                self.recover_run(run_id)
            except OrchestratorError as exc:  # e.g. its workflow file is gone: say so, go on
                stuck.add(run_id)
                if run_id not in self._told:  # once: a sweep every 30 s would repeat it
                    view = services.view(run_id)
                    log.warning("%s", cannot_continue(run_id, view.workflow, exc))
        self._told = stuck
        # Questions other processes opened (a CLI run that exited, a replica that died)
        # get their deadlines and reminders here too, as they fall due; those already
        # past apply now.
        self._people.watch_run(None)

    def leave(self) -> None:
        """This process stops serving: drop its replica row (if it ever swept)."""
        if not self._beating:
            return
        try:
            replicas.leave(self._services.engine, self._services.replica)
        except Exception as exc:  # the database is gone: the row goes stale in ALIVE
            log.warning("could not remove replica %s: %s", self._services.replica, exc)

    def recover_run(self, run_id: str) -> None:
        services = self._services
        run = services.view(run_id)
        wf = services.workflow_of(run)
        threads: dict[str, tuple[str | None, bool]] = {}  # step: its thread, and if held
        if any(view.status == StepStatus.RUNNING for view in run.steps):  # usually none
            steps = runs.STEPS
            with read_transaction(services.engine) as conn:
                rows = conn.execute(
                    sa.select(steps.c.step_id, steps.c.thread_id, steps.c.held_at)
                    .where(steps.c.run_id == run_id)
                ).all()  # fmt: skip
            threads = {step: (thread, held is not None) for step, thread, held in rows}
        for view in run.steps:
            if view.status == StepStatus.WAITING:
                with read_transaction(services.engine) as conn:
                    row = interactions.step_interaction(conn, run_id, view.step_id)
                if row is not None and row["status"] != InteractionStatus.PENDING:
                    self._people.resume_interaction(row["id"])
            elif view.status == StepStatus.RUNNING and leases.claim_orphan(
                services.engine, services.replica, run_id, view.step_id, services.clock.now()
            ):
                thread, held = threads.get(view.step_id, (None, False))
                self._recover_step(run_id, wf.step(view.step_id), thread, run.workflow, held)
        self._advancer.advance(run_id)

    def _recover_step(
        self, run_id: str, step: Step, thread_id: str | None, workflow: str, held: bool
    ) -> None:
        graph = self._services.graph
        state, detail = graph.inspect(thread_id) if thread_id else ("new", None)
        if state == "finished":
            # Straight from the checkpoint: scrubbed as the normal path scrubs (execution.py).
            outputs = self._services.scrubber.value(detail)
            self._finish_step(run_id, step.id, StepStatus.SUCCEEDED, outputs=outputs)
        elif state == "interrupted" and (held or not self._ran_on_after_answer(step, detail)):
            # Held: it waited for room in its workflow's share and had not run on with its
            # answer (held_steps.py); it parks and resumes with it, as from a question.
            self._people.park(run_id, step.id, detail)
        elif step.is_gate or step.idempotent:
            # The same thread id: a gate finds its interaction again instead of opening another.
            self._advancer.resume_step(run_id, step.id, thread_id or "", None, workflow)
        else:
            self._ask(run_id, step.id, thread_id or "")

    def _ran_on_after_answer(self, step: Step, pending: Any) -> bool:
        """Whether a task cut off at a question had been resumed with its answer: its thread's
        checkpoint still shows the question (a step's checkpoint is written when the step
        ends), but the question had finished pausing (`interrupt_id` is set in the commit
        that parks the step) and was answered, and the step ran again. Then the code after
        the question may have run, so a task that is not idempotent is a person's call.
        A gate's body after the question only reads the answer: it simply resumes."""
        if step.is_gate or step.idempotent:
            return False
        with read_transaction(self._services.engine) as conn:
            row = interactions.load_interaction(conn, pending.value["interaction_id"])
        return (
            row is not None
            and row["interrupt_id"] is not None
            and row["status"] != InteractionStatus.PENDING
        )

    def _finish_step(
        self, run_id: str, step_id: str, status: StepStatus, *,
        error: str | None = None, outputs: Mapping[str, Any] | None = None,
    ) -> bool:  # fmt: skip
        """Record a running step's end now (recovery's verdicts); False if it was not running."""
        now = self._services.clock.now()
        values, error = storable(outputs), storable(error)
        for attempt in storage_attempts():
            with attempt, write_transaction(self._services.engine) as conn:
                done = runs.set_step(
                    conn, run_id, step_id, expect=[StepStatus.RUNNING], status=status,
                    error=error, outputs=values, finished_at=now, updated_at=now,
                )  # fmt: skip
        if done:
            self._live.step_changed(run_id, step_id, status=status, error=error,
                                    finished_at=now, outputs=values)  # fmt: skip
        return done

    def _ask(self, run_id: str, step_id: str, thread_id: str) -> None:
        """Ask a person whether a step cut off mid-flight runs again, is skipped or fails."""
        now = self._services.clock.now()
        iid = interactions.interaction_id(thread_id, 0)
        run = self._services.view(run_id)
        who = self._services.access.recovery_answerers(run.started_by,
                                                       self._services.workflow_of(run))  # fmt: skip
        for attempt in storage_attempts():
            with attempt, write_transaction(self._services.engine) as conn:
                runs.set_step(conn, run_id, step_id, expect=[StepStatus.RUNNING],
                              status=StepStatus.WAITING, updated_at=now)  # fmt: skip
                conn.execute(
                    dialect_insert(conn)(interactions.INTERACTIONS)
                    .values(
                        id=iid, run_id=run_id, step_id=step_id, kind=InteractionKind.DECISION,
                        purpose="recovery", status=InteractionStatus.PENDING, responses=[],
                        prompt=(f"Step {step_id} was running when opsloop stopped and is not "
                                "marked idempotent. Run it again, skip it, or fail it?"),
                        options=list(gates.RECOVERY_OPTIONS), allowed_users=list(who.users),
                        allowed_groups=list(who.groups), required_approvals=1, allow_requester=True,
                        version=0, created_at=now,
                    )
                    .on_conflict_do_nothing()
                )  # fmt: skip
                runs.audit(conn, runs.SYSTEM, "step.interrupted_by_crash", now=now,
                           run_id=run_id, interaction_id=iid, step=step_id)  # fmt: skip
                row = interactions.load_interaction(conn, iid)
        assert row is not None
        self._live.step_changed(run_id, step_id, status=StepStatus.WAITING)
        self._people.opened(row)

    def apply_answer(self, row: Mapping[str, Any]) -> None:
        """The answer to a recovery question: the step (now `running`) retries, skips or fails."""
        run_id, step_id, choice = row["run_id"], row["step_id"], row["answer"]
        if choice == "retry":
            for attempt in storage_attempts():
                with attempt, write_transaction(self._services.engine) as conn:
                    runs.set_step(conn, run_id, step_id, expect=[StepStatus.RUNNING],
                                  status=StepStatus.PENDING,
                                  updated_at=self._services.clock.now())  # fmt: skip
        else:
            status = StepStatus.SKIPPED if choice == "skip" else StepStatus.FAILED
            error = None if choice == "skip" else f"failed by {row['answered_by']} after a crash"
            self._finish_step(run_id, step_id, status, error=error)
        self._advancer.advance(run_id)

    def retry(self, run_id: str, step_id: str | None, by: str) -> None:
        """Reset a failed step (or every failed one) and every step after it: those it left
        skipped or cancelled, and the `if: failure()` / `always()` handlers that ran after
        it (they run again, or are skipped, by how the retry goes)."""
        run = self._services.view(run_id)
        wf = self._services.known_workflow_of(run)
        if wf is None:  # the file and the stored definition are gone (docs/operations.md)
            raise OrchestratorError(
                f"run {run_id} cannot be retried: no workflow named {run.workflow!r} is left "
                f"(neither its file nor the definition it started with); restore the workflow "
                f'file the run started with, then retry (docs/operations.md, "A run whose '
                f'workflow is gone")'
            )
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
        now = self._services.clock.now()
        with write_transaction(self._services.engine) as conn:
            for sid in reset:
                runs.set_step(
                    conn, run_id, sid, expect=[StepStatus.FAILED, StepStatus.SKIPPED,
                    StepStatus.CANCELLED, *([] if sid in targets else [StepStatus.SUCCEEDED])],
                    status=StepStatus.PENDING, error=None, outputs=None, finished_at=None,
                    updated_at=now,
                )  # fmt: skip
            runs.set_run(  # succeeded too: a step that failed with continue_on_error
                conn, run_id, expect=[RunStatus.FAILED, RunStatus.CANCELLED, RunStatus.SUCCEEDED],
                status=RunStatus.RUNNING, error=None, finished_at=None, updated_at=now,
            )  # fmt: skip
            runs.audit(conn, by, "run.retried", now=now, run_id=run_id, steps=sorted(reset))
        self._advancer.advance(run_id)


def cannot_continue(run_id: str, workflow: str, error: Exception) -> str:
    """What to say of a run nothing can advance (its workflow is gone), and what to do."""
    return (f"run {run_id} (workflow {workflow}) cannot continue: {error}; restore the "
            f"workflow file the run started with and run `opsloop resume` (or restart "
            f"`opsloop serve`), or cancel the run: `opsloop cancel {run_id}`")  # fmt: skip


def runs_to_sweep(conn: sa.Connection) -> list[str]:
    """Unfinished runs a sweep acts on: every one but those quietly waiting for people
    (status `waiting`, no step running, and every waiting step's question still open).
    A run waiting with a step `running` or answered but not resumed (its process died
    in between) is swept; so is every `pending` or `running` run, as before."""
    run, step, asked = runs.RUNS, runs.STEPS, interactions.INTERACTIONS
    moving = sa.select(run.c.id).where(run.c.status.in_([RunStatus.PENDING, RunStatus.RUNNING]))
    running = sa.select(step.c.run_id).where(step.c.status == StepStatus.RUNNING)
    # Waiting steps less those with an open question: two index scans, no per-row probe
    # (and no join, which a planner with stale statistics turns into a nested loop).
    answered = sa.except_(
        sa.select(step.c.run_id, step.c.step_id).where(step.c.status == StepStatus.WAITING),
        sa.select(asked.c.run_id, asked.c.step_id)
        .where(asked.c.status == InteractionStatus.PENDING),
    ).subquery()  # fmt: skip
    stirred = sa.union(running, sa.select(answered.c.run_id)).subquery()
    waiting = sa.select(run.c.id).where(run.c.status == RunStatus.WAITING,
                                        run.c.id.in_(sa.select(stirred.c.run_id)))  # fmt: skip
    return sorted({row[0] for row in conn.execute(sa.union(moving, waiting))})
