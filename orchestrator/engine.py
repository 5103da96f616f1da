"""The orchestrator: schedules a run's DAG itself; each step that may pause is its own
LangGraph thread.

Why not one LangGraph graph per workflow: LangGraph runs nodes in lockstep
supersteps and a pending interrupt stops the whole graph, so a workflow graph
would wait for each level's slowest step and freeze every branch beside a
gate (../shared/notes/langgraph.md). Here a step starts the moment its needs
are done, on a bounded thread pool, and a gate parks only its own step. Steps
that cannot pause (shell, tasks without `ctx`) need nothing from LangGraph and
run without a graph (`_execute`).

Every transition is a conditional UPDATE committed before anything acts on
it: a step is claimed pending -> running before it is submitted, an answer
claims its interaction before the step resumes, and a deadline claims the
same row, so racing answers, deadlines and replicas give one result.
"""

from __future__ import annotations

import logging
import subprocess
import threading
import uuid
import weakref
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from orchestrator import gates, interactions, leases, people, queries, runs, scheduler, stepwork
from orchestrator.actions import (
    kill_process_group,
)
from orchestrator.errors import (
    AlreadyAnswered,
    OrchestratorError,
    StepFailed,
)
from orchestrator.protocol import (
    Directory,
    FrontEnd,
    InteractionView,
    RunView,
    SilentFrontEnd,
    StaticDirectory,
    StepView,
)
from orchestrator.stepgraph import StepGraph, StepResult
from orchestrator.storage_retry import RetryingSaver, storage_attempts
from orchestrator.timers import Timers
from orchestrator.timers import aware as timers_aware
from orchestrator.versions import WorkflowVersions
from orchestrator.workflow.definitions import Step, Workflow
from orchestrator.workflow.params import coerce_params
from storage.engine import checkpoint_wal, is_sqlite, read_transaction, write_transaction
from storage.statuses import FINISHED_RUN, InteractionStatus, RunStatus, StepStatus

log = logging.getLogger(__name__)
Clock = Callable[[], datetime]
WAL_CHECKPOINT_S = 1.0  # SQLite: how often the write-ahead log is copied back, off the commit path
CANCEL_POLL_S = 1.0  # how soon a run cancelled by another process stops its shell steps here


def utcnow() -> datetime:
    return datetime.now(UTC)


class Orchestrator:
    """Starts runs, advances them as steps finish, and applies people's answers."""

    def __init__(
        self,
        engine: Engine,
        workflows: Mapping[str, Workflow],
        *,
        front_end: FrontEnd | None = None,
        directory: Directory | None = None,
        max_workers: int = 16,
        clock: Clock = utcnow,
    ) -> None:
        self.engine = engine
        self.workflows = dict(workflows)
        self._versions = WorkflowVersions(engine, self.workflows)
        self.front_end: FrontEnd = _Guarded(front_end or SilentFrontEnd())  # type: ignore[assignment]
        self.directory: Directory = directory or StaticDirectory()
        self.clock = clock
        self.saver = RetryingSaver(engine)
        self.graph = StepGraph(self.saver)
        self.max_workers = max_workers
        self.pool = ThreadPoolExecutor(max_workers, thread_name_prefix="opsloop-step")
        self.timers = Timers(self.expire, self.remind, self.escalate)
        self.replica = leases.replica_id()
        self._run_locks: weakref.WeakValueDictionary[str, _RunLock] = weakref.WeakValueDictionary()
        self._locks_guard = threading.Lock()
        # Per active run: its newest view, re-read by every advance pass and patched with
        # each change this process commits, so telling the front end costs no query.
        self._latest: dict[str, RunView] = {}
        # Per active run: step views by row version, so a pass re-reads the run cheaply.
        self._views: dict[str, runs.ViewCache] = {}
        # Steps this process dispatched and is still running: (run id, step id). A pass
        # counts them as running even if the view it read predates their claim.
        self._inflight: set[tuple[str, str]] = set()
        # Per run: steps whose work ended, for the next pass to record.
        self._outcomes: dict[str, list[scheduler.Outcome]] = {}
        # Runs a thread is making passes over, and runs that need one more pass.
        self._passing: set[str] = set()
        self._pass_wanted: set[str] = set()
        self._local = threading.local()  # .worker: this thread is one of the pool's
        self._procs: dict[tuple[str, str], subprocess.Popen] = {}
        # Runs this process cancelled: a step claimed before the cancel must not start.
        self._cancelled: set[str] = set()
        self._changed = threading.Condition()

    # -- life cycle ----------------------------------------------------------

    def start(self, *, recover: bool = True) -> None:
        """Start the timers and, with `recover`, take over every unfinished run.

        Recovery rebuilds every pending deadline and reminder and continues
        every unfinished run, treating steps left `running` as interrupted by a
        crash: only a process that owns the database (`serve`, `resume`) may
        do it. Short-lived commands pass `recover=False` and `watch_run()` the
        run they act on.
        """
        self.timers.start()
        self.timers.every(leases.HEARTBEAT_S, self._heartbeat, "heartbeat")
        self.timers.every(CANCEL_POLL_S, self._kill_cancelled, "cancelled")
        if is_sqlite(self.engine):
            self.timers.every(WAL_CHECKPOINT_S, lambda: checkpoint_wal(self.engine), "wal")
        if not recover:
            return
        self.sweep()
        self.timers.every(leases.LEASE.total_seconds(), self.sweep, "sweep")

    def sweep(self) -> None:
        """Continue unfinished runs: steps whose process is gone, answers not yet acted on.

        Runs at start and then every lease period, so a replica that dies is
        taken over by the others; steps a live process runs are left alone.
        """
        from orchestrator.recovery import recover_run

        with read_transaction(self.engine) as conn:
            unfinished = runs.unfinished_run_ids(conn)
        for run_id in unfinished:
            try:
                recover_run(self, run_id)
            except OrchestratorError as exc:  # e.g. its workflow file is gone: say so, go on
                log.warning("could not recover run %s: %s", run_id, exc)
        # Questions other processes opened (a CLI run that exited, a replica that died)
        # get their deadlines and reminders here too; those already past apply now.
        self.watch_run(None)

    def _heartbeat(self) -> None:
        leases.renew(self.engine, self.replica, self.clock())

    def process_started(self, run_id: str, step_id: str, proc: subprocess.Popen) -> None:
        """A shell step's process is up: cancel kills it. If the run was cancelled while the
        step was starting, kill it now (cancel marks the run before it looks for processes)."""
        self._procs[(run_id, step_id)] = proc
        if run_id in self._cancelled:
            kill_process_group(proc)

    def _kill_cancelled(self) -> None:
        """Kill this process's shell steps whose run was cancelled elsewhere (`opsloop
        cancel` in another shell, another replica): `cancel` kills only its own."""
        procs = dict(self._procs)  # a copy: workers add and remove entries meanwhile
        if not procs:
            return
        with read_transaction(self.engine) as conn:
            cancelled = runs.cancelled_steps(conn, {run_id for run_id, _ in procs})
        for key in cancelled & procs.keys():
            kill_process_group(procs[key])

    def watch_run(self, run_id: str | None) -> None:
        """Schedule the deadlines and reminders of one run's (or every) open interactions.

        A deadline that passed while no process watched it is applied now,
        before this returns, so a caller that waits next sees its outcome.
        """
        with read_transaction(self.engine) as conn:
            pending = interactions.pending_interactions(conn, run_id)
        now = self.clock()
        for row in pending:
            if row["deadline"] is not None and timers_aware(row["deadline"]) <= now:
                self.expire(row["id"])
            else:
                self.timers.watch(row, now)

    def close(self) -> None:
        self.timers.shutdown()
        self.pool.shutdown(wait=True, cancel_futures=False)
        # The SQLite checkpoint writer keeps one pooled connection: give it back, or every
        # Orchestrator built on a shared engine would hold one until the pool runs dry.
        self.saver.close()

    # -- runs -----------------------------------------------------------------

    def workflow(self, name: str) -> Workflow:
        """The current version of workflow `name` (UnknownWorkflow lists the known ones)."""
        return self._versions.named(name)

    def workflow_of(self, run: RunView) -> Workflow:
        """The workflow as `run` started with it (its file may have changed since)."""
        return self._versions.of(run.workflow, run.digest)

    def definition(self, name: str, digest: str) -> Workflow:
        """Workflow `name` in the version whose text hashes to `digest` (versions.py)."""
        return self._versions.of(name, digest)

    def start_run(
        self,
        workflow: str,
        params: Mapping[str, Any],
        *,
        started_by: str,
        front_end: str = "cli",
        channel: str | None = None,
        rerun_of: str | None = None,
    ) -> str:
        """Validate params, persist the run and its steps, and start what can start."""
        wf = self.workflow(workflow)
        values = coerce_params(wf, params)
        run_id, now = runs.new_run_id(), self.clock()
        for attempt in storage_attempts():
            with attempt, write_transaction(self.engine) as conn:
                if wf.text:  # a workflow built in code has no text to keep
                    runs.save_definition(conn, wf.name, wf.digest, wf.text, now)
                runs.insert_run(
                    conn, run_id=run_id, workflow=wf.name, digest=wf.digest, params=values,
                    step_ids=[s.id for s in wf.steps], started_by=started_by,
                    front_end=front_end, channel=channel, rerun_of=rerun_of, now=now,
                )  # fmt: skip
                runs.audit(conn, started_by, "run.started", now=now, run_id=run_id, params=values)
        self.front_end.run_started(self.view(run_id))
        self.advance(run_id)
        return run_id

    def view(self, run_id: str) -> RunView:
        for attempt in storage_attempts():
            with attempt:
                run = queries.run_view(self.engine, run_id)
        return run

    def advance(self, run_id: str) -> None:
        """Have the run advanced: skip what cannot run, start what can, settle the run.

        One thread at a time makes passes over a run. A call made while another
        thread is passing returns at once, and that thread makes one more pass
        (which reads everything committed before it starts): so a worker that
        finished a step goes straight back to the pool, while steps that finish
        together are recorded by a few passes, not one pass each. A caller from
        outside the pool (start_run, retry, recovery) makes one pass and leaves
        any further ones to the pool, so it never ends up driving the run.
        """
        with self._locks_guard:
            self._pass_wanted.add(run_id)
            if run_id in self._passing:
                return
            self._passing.add(run_id)
        on_worker, handed_off = getattr(self._local, "worker", False), False
        try:
            while True:
                with self._locks_guard:
                    if run_id not in self._pass_wanted or handed_off:
                        self._passing.discard(run_id)
                        break
                    self._pass_wanted.discard(run_id)
                with self._run_lock(run_id):
                    self._advance_once(run_id)
                handed_off = not on_worker
        except BaseException:
            with self._locks_guard:
                self._passing.discard(run_id)
            raise
        if handed_off and run_id in self._pass_wanted:
            self.submit(self.advance, run_id)
        self._notify()

    def _advance_once(self, run_id: str) -> None:
        """One scheduling pass (orchestrator/scheduler.py), then act on what it committed."""
        with self._locks_guard:
            outcomes = self._outcomes.pop(run_id, [])
            inflight = frozenset(step for rid, step in self._inflight if rid == run_id)
            free = self.max_workers - len(self._inflight)
            cache = self._views.setdefault(run_id, {})
        now = self.clock()
        try:
            for attempt in storage_attempts():
                with attempt:
                    # The pass reads rows it wrote itself: the cache takes them only once
                    # they are committed, or a rolled-back version could shadow a real one.
                    trial = dict(cache)
                    read = None
                    if is_sqlite(self.engine):  # outside SQLite's one write lock
                        with read_transaction(self.engine) as conn:
                            read = runs.load_run(conn, run_id, trial)
                    with write_transaction(self.engine) as conn:
                        done = scheduler.run_pass(
                            conn, run_id, self.workflow_of, outcomes, inflight=inflight, free=free,
                            now=now, ownership=leases.ownership(self.replica, now),
                            new_thread_id=lambda step_id: _thread_id(run_id, step_id), read=read,
                            cache=trial,
                        )  # fmt: skip
            cache.update(trial)
        except BaseException:
            with self._locks_guard:  # not recorded: the next pass tries again
                self._outcomes.setdefault(run_id, [])[:0] = outcomes
            raise
        run = done.run
        if run is None:
            return
        if run.status in FINISHED_RUN:
            self._forget(run_id)
        else:
            with self._locks_guard:
                self._latest[run_id] = run
                self._inflight.update((run_id, c.step.id) for c in done.claimed)
        views = {s.step_id: s for s in run.steps}
        for step_id, _values in done.changed:
            self.front_end.step_changed(run, views[step_id])
        for step_id in done.dropped:
            if views[step_id].status == StepStatus.RUNNING:
                log.warning("run %s: step %s was taken over by another replica while it ran "
                            "here; its result here is dropped", run_id, step_id)  # fmt: skip
        for started in done.claimed:
            if stepwork.can_pause(started.step):
                self.saver.new_thread(started.thread_id)
            self.submit(self._execute, run_id, started.step.id, started.thread_id, None, run)
        for step in done.queued:
            self._dispatch(run, step)
        if done.finished:
            self.front_end.run_finished(run)

    def _dispatch(self, run: RunView, step: Step) -> None:
        """Queue a ready step on the pool. It stays `pending` in the database until a worker
        picks it up and claims it, so a step still queued at a crash is simply started
        again, and its time counts from when it really started."""
        with self._locks_guard:
            self._inflight.add((run.id, step.id))
        self.submit(self._start, run, step)

    def _start(self, run: RunView, step: Step) -> None:
        """On a worker: claim the step pending -> running, then run it."""
        thread_id = _thread_id(run.id, step.id)
        now = self.clock()
        claim = scheduler.claim_values(step, thread_id, now, leases.ownership(self.replica, now))
        won = False
        try:
            for attempt in storage_attempts():
                with attempt, write_transaction(self.engine) as conn:
                    won = runs.set_step(conn, run.id, step.id, expect=[StepStatus.PENDING],
                                        **claim)  # fmt: skip
                    if won:
                        runs.set_run(conn, run.id, expect=[RunStatus.WAITING],
                                     status=RunStatus.RUNNING, updated_at=now)  # fmt: skip
        finally:
            if not won:  # cancelled meanwhile, another replica started it, or storage failed
                with self._locks_guard:
                    self._inflight.discard((run.id, step.id))
        if not won:
            return
        if stepwork.can_pause(step):
            self.saver.new_thread(thread_id)
        self._step_changed(run.id, step.id, status=StepStatus.RUNNING, started_at=now,
                           finished_at=None, attempts=claim["attempts"])  # fmt: skip
        self._execute(run.id, step.id, thread_id, None, run)

    # -- executing one step ---------------------------------------------------

    def _execute(
        self,
        run_id: str,
        step_id: str,
        thread_id: str,
        resume: Mapping[str, Any] | None,
        run: RunView | None = None,
    ) -> None:
        """Run (or resume) one step. `run` is the view the step was dispatched from: its
        needs had finished by then, so their outputs in it are final.

        A step that may wait for a person runs in its LangGraph thread: interrupt() and
        Command(resume=...) are what pause and resume it. A step that cannot pause (shell,
        a task without `ctx`) runs directly, with no graph: for it LangGraph would only
        save the result, and that costs more CPU than the step's whole bookkeeping
        (docs/benchmarks.md). Either way the next pass records the result in the step's
        row, in the transaction that starts what it unblocks.
        """
        try:
            if run is None:
                run = self.view(run_id)
            step = self.workflow_of(run).step(step_id)
            if run_id in self._cancelled:  # claimed, then cancelled before it started
                return
            if resume is None and not stepwork.can_pause(step):
                result = StepResult(stepwork.work(self, run, step, thread_id), None)
            else:
                result = self.graph.run(
                    thread_id, lambda: stepwork.work(self, run, step, thread_id), resume
                )
        except StepFailed as exc:
            self._outcome(run_id, step_id, StepStatus.FAILED, error=str(exc), outputs=exc.outputs)
        except Exception as exc:
            log.exception("step %s of run %s crashed", step_id, run_id)
            self._outcome(run_id, step_id, StepStatus.FAILED, error=f"{type(exc).__name__}: {exc}")
        else:
            if result.interrupt is not None:
                self._paused(run_id, step_id, result.interrupt)
            else:
                self._outcome(run_id, step_id, StepStatus.SUCCEEDED, outputs=result.outputs)
        finally:
            self._procs.pop((run_id, step_id), None)
            with self._locks_guard:
                self._inflight.discard((run_id, step_id))
        self.advance(run_id)

    def _paused(self, run_id: str, step_id: str, pending: Any) -> None:
        iid = pending.value["interaction_id"]
        for attempt in storage_attempts():
            with attempt, write_transaction(self.engine) as conn:
                runs.set_step(
                    conn, run_id, step_id, expect=[StepStatus.RUNNING], status=StepStatus.WAITING,
                    updated_at=self.clock(),
                )  # fmt: skip
                conn.execute(
                    sa.update(interactions.INTERACTIONS)
                    .where(interactions.INTERACTIONS.c.id == iid)
                    .values(interrupt_id=pending.id)
                )
                row = interactions.load_interaction(conn, iid)
        assert row is not None
        self._step_changed(run_id, step_id, status=StepStatus.WAITING)
        if row["status"] == InteractionStatus.PENDING:
            self.timers.watch(row, self.clock())
            self.front_end.interaction_opened(self.view(run_id), interactions.interaction_view(row))
        else:  # answered before the step finished pausing
            self.resume_interaction(iid)

    def _finish(
        self,
        run_id: str,
        step_id: str,
        status: StepStatus,
        *,
        expect: list[StepStatus] | None = None,
        error: str | None = None,
        outputs: Mapping[str, Any] | None = None,
    ) -> bool:
        now = self.clock()
        for attempt in storage_attempts():
            with attempt, write_transaction(self.engine) as conn:
                done = runs.set_step(
                    conn, run_id, step_id, expect=expect or [StepStatus.RUNNING], status=status,
                    error=error, outputs=dict(outputs) if outputs is not None else None,
                    finished_at=now, updated_at=now,
                )  # fmt: skip
        if done:
            self._step_changed(
                run_id, step_id, status=status, error=error, finished_at=now,
                outputs=dict(outputs) if outputs is not None else None,
            )  # fmt: skip
        return done

    def _outcome(
        self,
        run_id: str,
        step_id: str,
        status: StepStatus,
        *,
        error: str | None = None,
        outputs: Mapping[str, Any] | None = None,
    ) -> None:
        """Leave how a step ended for the next pass, which records it with what it unblocks.

        Until that pass commits (a few milliseconds), a crash finds the step `running`.
        A step that ran in its LangGraph thread has its result in its checkpoint, and
        recovery records it from there. A step that ran without a graph counts as cut
        off mid-flight, as a crash a moment earlier would have left it: it runs again if
        it is idempotent, and otherwise a person decides (recovery.py)."""
        outcome = scheduler.Outcome(step_id, status, self.clock(), error,
                                    dict(outputs) if outputs is not None else None)  # fmt: skip
        with self._locks_guard:
            self._outcomes.setdefault(run_id, []).append(outcome)

    def _step_changed(self, run_id: str, step_id: str, **committed: Any) -> None:
        """Tell the front end about a change just committed: `committed` holds its values."""
        with self._locks_guard:
            run = self._latest.get(run_id)
            if run is not None:
                run = self._latest[run_id] = run.with_step(step_id, **committed)
        if run is None:  # not a run this process is advancing: read it
            run = self.view(run_id)
        step: StepView = next(s for s in run.steps if s.step_id == step_id)
        self.front_end.step_changed(run, step)
        self._notify()

    def _forget(self, run_id: str) -> None:
        """Drop what this process keeps about a run that ended."""
        with self._locks_guard:
            self._latest.pop(run_id, None)
            self._views.pop(run_id, None)

    # -- people ---------------------------------------------------------------

    def decide(
        self,
        iid: str,
        user: str,
        answer: Any,
        comment: str | None = None,
        params: Mapping[str, Any] | None = None,
    ) -> InteractionView:
        """Record `user`'s answer exactly once and resume the step when the interaction closes.

        `params` (approvals only, names in the gate's editable_params) changes the
        run's params in the same transaction: approve with changes.
        Raises NotFound, NotAllowed (audited), AlreadyAnswered (names who answered) or
        InvalidAnswer; none of them changes anything.
        """
        from orchestrator.answers import record_answer

        row = record_answer(self, iid, gates.person(user), answer, comment, params)
        view = interactions.interaction_view(row)
        self.front_end.interaction_updated(self.view(row["run_id"]), view)
        if row["status"] != InteractionStatus.PENDING:
            self.timers.forget(iid)
            self.resume_interaction(iid)
        return view

    def resume_interaction(self, iid: str) -> None:
        """Continue the step behind a closed interaction, once, whoever calls."""
        people.resume_interaction(self, iid)

    def expire(self, iid: str) -> None:
        """Apply an interaction's deadline action, unless someone answered first."""
        people.expire(self, iid)

    def remind(self, iid: str) -> None:
        """Remind the people an open interaction waits for."""
        people.remind(self, iid)

    def escalate(self, iid: str) -> None:
        """Tell the escalation contacts of a still-open interaction, once across replicas."""
        people.escalate(self, iid)

    # -- operator commands ----------------------------------------------------

    def cancel(self, run_id: str, by: str) -> RunView:
        """Cancel a run: pending steps and open interactions close, processes are killed."""
        now = self.clock()
        for attempt in storage_attempts():
            with attempt, write_transaction(self.engine) as conn:
                open_ids = runs.cancel_run(conn, run_id, by, now)
        if open_ids is None:
            self.view(run_id)  # NotFound for a run that does not exist
            raise OrchestratorError(
                f"run {run_id} is not running (`opsloop show {run_id}` shows its state)"
            )
        for iid in open_ids:
            self.timers.forget(iid)
        self._cancelled.add(run_id)  # before the kills: see process_started
        for (rid, _), proc in list(self._procs.items()):
            if rid == run_id:
                kill_process_group(proc)
        self._forget(run_id)
        view = self.view(run_id)
        self.front_end.run_finished(view)
        self._notify()
        return view

    def retry(self, run_id: str, step_id: str | None, by: str) -> RunView:
        from orchestrator.recovery import retry_run

        retry_run(self, run_id, step_id, by)
        self.advance(run_id)
        return self.view(run_id)

    def rerun(self, run_id: str, by: str) -> str:
        """Start a new run of the same workflow with the same params."""
        old = self.view(run_id)
        return self.start_run(old.workflow, old.params, started_by=by, rerun_of=run_id)

    # -- waiting (CLI, tests) -------------------------------------------------

    def wait(self, run_id: str, timeout: float = 60.0) -> RunView:
        """Block until the run is finished or nothing can move without a person."""
        import time

        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                run = self.view(run_id)
                busy = any(s.status in (StepStatus.RUNNING,) for s in run.steps)
                if run.status in FINISHED_RUN or (run.status == RunStatus.WAITING and not busy):
                    return run
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"run {run_id} still {run.status} after {timeout} s")
                self._changed.wait(min(left, 0.5))

    def submit(self, fn: Callable[..., None], *args: Any) -> None:
        """Run `fn(*args)` on the step pool; what it raises is logged, not lost in a future
        (the run stays as its last commit left it, and the next sweep picks it up)."""

        def logged() -> None:
            self._local.worker = True
            try:
                fn(*args)
            except Exception:
                log.exception("%s%r failed on the step pool", fn.__name__, args[:2])

        self.pool.submit(logged)

    def _notify(self) -> None:
        with self._changed:
            self._changed.notify_all()

    def _run_lock(self, run_id: str) -> _RunLock:
        # Weakly held: a lock nobody holds or waits for is dropped, so a long-lived
        # process does not keep one per run it ever saw.
        with self._locks_guard:
            lock = self._run_locks.get(run_id)
            if lock is None:
                lock = self._run_locks[run_id] = _RunLock()
            return lock


def _thread_id(run_id: str, step_id: str) -> str:
    """A fresh LangGraph thread for one execution of a step."""
    return f"{run_id}/{step_id}/{uuid.uuid4().hex[:8]}"


class _Guarded:
    """The front end as the engine calls it: a front end that raises is logged, and the
    run goes on (the change it was told about is already committed)."""

    def __init__(self, front_end: FrontEnd) -> None:
        self._front_end = front_end

    def __getattr__(self, name: str) -> Any:
        method = getattr(self._front_end, name)
        if not callable(method):
            return method

        def call(*args: Any, **kwargs: Any) -> Any:
            try:
                return method(*args, **kwargs)
            except Exception:
                log.exception("front end %s.%s failed", type(self._front_end).__name__, name)
                return None

        return call


class _RunLock:
    """A lock that can be weakly referenced (threading.Lock cannot)."""

    __slots__ = ("__weakref__", "_lock")

    def __init__(self) -> None:
        self._lock = threading.Lock()

    def __enter__(self) -> bool:
        return self._lock.acquire()

    def __exit__(self, *exc: object) -> None:
        self._lock.release()


__all__ = ["AlreadyAnswered", "Orchestrator"]
