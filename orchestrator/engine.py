"""The orchestrator: the one object a front end holds. It builds the runtime's
collaborators, each given what it needs at construction, and delegates to them:

- `Services` (services.py): database, clock, workflow versions, front end, directory;
- `LiveRuns` (live.py): what this process knows of the runs it advances; `wait()`;
- `StepRunner` (execution.py): runs one step, in its LangGraph thread if it may pause;
- `Advancer` (advancing.py): scheduling passes and the worker pool;
- `People` (people.py): questions, answers, deadlines, reminders, escalations;
- `Recovery` (recovery.py): takes over unfinished runs; retries;
- `ScheduleTimer` (schedule_timer.py): fires due cron schedules (schedules.py).
docs/architecture.md draws how a run flows through them.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import timedelta
from typing import Any

from sqlalchemy.engine import Engine

from orchestrator import leases, runs, schedules, starting, storage_retry
from orchestrator.access import AccessPolicy
from orchestrator.advancing import Advancer
from orchestrator.changes import ChangeWatch
from orchestrator.clock import Clock, SystemClock
from orchestrator.errors import AlreadyAnswered, OrchestratorError, RateLimited
from orchestrator.execution import StepRunner
from orchestrator.gatekeeper import Gatekeeper
from orchestrator.live import LiveRuns
from orchestrator.notices import CHANGES, Listener
from orchestrator.people import People
from orchestrator.protocol import (
    Directory,
    FrontEnd,
    InteractionView,
    RunView,
    SilentFrontEnd,
    StaticDirectory,
)
from orchestrator.rate_limit import RateLimit
from orchestrator.recovery import Recovery
from orchestrator.retrying_saver import RetryingSaver
from orchestrator.schedule_timer import JOB_ID as SCHEDULE_JOB
from orchestrator.schedule_timer import ScheduleTimer
from orchestrator.schedules import ScheduleView
from orchestrator.secrets import Scrubber
from orchestrator.services import GuardedFrontEnd, Services
from orchestrator.step_limits import StepLimits
from orchestrator.stepgraph import StepGraph
from orchestrator.timers import Timers
from orchestrator.versions import WorkflowVersions
from orchestrator.workflow.definitions import Approvers, Workflow
from orchestrator.workflow.params import coerce_params
from storage.engine import write_transaction
from storage.statistics import sqlite_upkeep

log = logging.getLogger(__name__)
CANCEL_POLL_S = 1.0  # how soon a run cancelled by another process stops its shell steps here


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
        clock: Clock | None = None,
        scrubber: Scrubber | None = None,
        admins: Approvers | None = None,
        rate_limit: RateLimit | None = None,
        limits: StepLimits | None = None,
    ) -> None:
        self.engine = engine
        self.workflows = dict(workflows)
        self.directory: Directory = directory or StaticDirectory()
        self.clock: Clock = clock or SystemClock()
        saver = RetryingSaver(engine)
        self._services = services = Services(
            engine=engine, clock=self.clock, versions=WorkflowVersions(engine, self.workflows),
            front_end=GuardedFrontEnd(front_end or SilentFrontEnd()),  # type: ignore[arg-type]
            directory=self.directory, replica=leases.replica_id(), saver=saver,
            graph=StepGraph(saver), scrubber=scrubber or Scrubber(), limits=limits or StepLimits(),
            access=AccessPolicy(admins or Approvers(), self.directory),
        )  # fmt: skip
        self._rate_limit = rate_limit
        self._gate = Gatekeeper(services)
        self._timers = Timers(self.clock)
        self._live = LiveRuns(services)
        self._runner = StepRunner(services, self._live)
        # The collaborators call each other through these callables, bound once here.
        self._advancer = Advancer(
            services, self._live, self._runner, max_workers=max_workers,
            on_pause=lambda run_id, step_id, pending: self._people.park(run_id, step_id, pending),
            on_finished=self._run_finished,
        )  # fmt: skip
        # One reader of the audit log for the process (changes.py), woken by notices.
        self.changes, self._listener = ChangeWatch(engine), Listener(engine, services.replica)
        self._listener.on(CHANGES, self.changes.poll)
        self._people = People(
            services, self._live, self._advancer, self._timers,
            on_recovery_answer=lambda row: self._recovery.apply_answer(row),
            listener=self._listener,
        )  # fmt: skip
        self._recovery = Recovery(services, self._live, self._advancer, self._people,
                                  self.changes)  # fmt: skip
        self._started = False
        self._left: set[tuple[str, str]] | None = None  # drained: steps still running then
        self._schedules = ScheduleTimer(
            services, self._timers, started=self._adopt, cancelled=self._cancelled_elsewhere
        )

    def start(self, *, recover: bool = True, serving: bool = False) -> None:
        """Start the timers and, with `recover`, take over every unfinished run.

        Recovery arms the deadlines and reminders falling due soon and continues every
        unfinished run, treating steps left `running` as interrupted by a crash: only a
        process that owns the database (`serve`, `resume`) may do it. Short-lived
        commands pass `recover=False` and `watch_run()` the run they act on. `serving`:
        this process serves the database, so schedules no file has any more are disabled.
        """
        timers, engine = self._timers, self.engine
        self._started = True
        timers.start()
        # Leases are clock time: on a fast clock (OPSLOOP_CLOCK_SPEED) renew as often.
        timers.every(self._wall_s(leases.HEARTBEAT_S), "heartbeat", self._heartbeat)
        timers.every(CANCEL_POLL_S, "cancelled", self._runner.kill_cancelled)
        for seconds, job, upkeep in sqlite_upkeep(engine, serving=serving):
            timers.every(seconds, job, upkeep)  # the WAL; serving: planner statistics too
        if not recover:
            return
        self._recovery.sweep()
        self._schedules.start(prune=serving)
        timers.every(self._wall_s(leases.LEASE.total_seconds()), "sweep", self.sweep)
        timers.every(self.changes.every_s(self._listener.listens), "questions", self.changes.poll)

    def sweep(self) -> None:
        """Continue unfinished runs, watch every open question (recovery.py), and fire
        what schedules are due (one that another process resumed, say)."""
        self._recovery.sweep()
        self._schedules.check()

    def watch_run(self, run_id: str | None) -> None:
        """Watch the deadlines and reminders of one run's (or every) open questions; one
        that passed while no process watched it is applied before this returns."""
        self._people.watch_run(run_id)

    def close(self) -> None:
        self._timers.shutdown()
        self._advancer.close()
        self._recovery.leave()  # no longer a replica alive (orchestrator/replicas.py)
        if self._left:  # drained: python steps that ended since give their leases up
            leases.release(self.engine, self.replica, self.clock.now(),
                           only=self._left - self.running_steps())  # fmt: skip
        # SQLite's checkpoint writer holds a pooled connection: give it back (pool runs dry)
        self._services.saver.close()

    def _wall_s(self, clock_s: float) -> float:
        """Real seconds for `clock_s` seconds of the clock."""
        now = self.clock.now()
        return self.clock.seconds_until(now + timedelta(seconds=clock_s)) or clock_s

    def drain(self, timeout: float) -> bool:
        """A graceful stop (SIGTERM): start, resume or time out nothing; give running steps
        `timeout` s to end and be recorded; kill the shell steps left and release the leases
        of the steps that stopped (taken over elsewhere at once; a python step keeps its
        lease until it ends or the process exits). True if all ended."""
        self._advancer.draining = True  # first: a step that ends from now on starts nothing
        for job in ("sweep", SCHEDULE_JOB):  # adopt no run, fire no schedule
            self._timers.cancel(job)
        self._people.stop_timers()
        finished = self._advancer.drain(timeout)
        self._advancer.stop_passes()
        killed = self._runner.kill_all()
        self._left = self.running_steps() - killed
        released = leases.release(self.engine, self.replica, self.clock.now(), self._left)
        log.info("drained (all ended: %s): %d shell step(s) killed, %d lease(s) released, %d "
                 "still running", finished, len(killed), released, len(self._left))  # fmt: skip
        return finished

    def running_steps(self) -> set[tuple[str, str]]:
        return self._advancer.running()  # (run id, step id) of the steps running here

    def liveness(self) -> dict[str, bool]:
        """Whether the timers run, and (in a process that recovers) the sweep and the
        schedule loop: what /readyz reports."""
        jobs = set(self._timers.job_ids()) if self._timers.running else set()
        return {"timers": self._timers.running, "schedules": "sweep" in jobs}

    def _heartbeat(self) -> None:
        only = None if self._left is None else self._left & self.running_steps()
        leases.renew(self.engine, self.replica, self.clock.now(), only)

    @property
    def replica(self) -> str:
        """This process as step leases name it (host/pid/incarnation)."""
        return self._services.replica

    def workflow(self, name: str) -> Workflow:
        """The current version of workflow `name` (UnknownWorkflow names the nearest known one)."""
        return self._services.versions.named(name)

    def workflow_of(self, run: RunView) -> Workflow:
        """The workflow as `run` started with it (its file may have changed since)."""
        return self._services.workflow_of(run)

    def start_run(
        self, workflow: str, params: Mapping[str, Any], *, started_by: str,
        front_end: str = "cli", channel: str | None = None, rerun_of: str | None = None,
        run_id: str | None = None,
    ) -> str:  # fmt: skip
        """Validate params, persist the run (as `run_id`: a request's own, so a redo cannot
        start it twice) and its steps, and start what can start."""
        wf = self.workflow(workflow)
        self._gate.check_start(started_by, wf, channel if front_end == "slack" else None)
        values = coerce_params(wf, params)
        run_id, now = run_id or runs.new_run_id(), self.clock.now()
        new = starting.NewRun(wf, run_id, values, started_by, front_end, channel, rerun_of, now)
        try:  # with its first pass, in one transaction (starting.py)
            view, settle = starting.start(self._services, self._advancer, self._live, new,
                                          self._rate_limit)  # fmt: skip
        except RateLimited as exc:
            self._gate.refuse(started_by, "run", str(exc), workflow=wf.name, error=exc)
        self._services.front_end.run_started(view)
        if settle is None:
            self._advancer.advance(run_id)
        else:
            settle(True)
        return run_id

    def view(self, run_id: str) -> RunView:
        """The run as committed now; NotFound for an unknown id."""
        return self._services.view(run_id)

    def wait(self, run_id: str, timeout: float = 60.0) -> RunView:
        """Block until the run is finished or nothing can move without a person."""
        return self._live.wait(run_id, timeout)

    def decide(
        self, iid: str, user: str, answer: Any, comment: str | None = None,
        params: Mapping[str, Any] | None = None,
    ) -> InteractionView:  # fmt: skip
        """Record `user`'s answer exactly once and resume the step when the interaction closes.

        `params` (approvals only, names in the gate's editable_params) changes the
        run's params in the same transaction: approve with changes.
        Raises NotFound, NotAllowed (audited), AlreadyAnswered (names who answered) or
        InvalidAnswer; none of them changes anything.
        """
        return self._people.decide(iid, user, answer, comment, params)

    def cancel(self, run_id: str, by: str) -> RunView:
        """Cancel a run: pending steps and open interactions close, processes are killed."""
        self._check_change(run_id, by, "cancel")
        now = self.clock.now()
        for attempt in storage_retry.storage_attempts():
            with attempt, write_transaction(self.engine) as conn:
                open_ids = runs.cancel_run(conn, run_id, by, now)
        if open_ids is None:
            self.view(run_id)  # NotFound for a run that does not exist
            raise OrchestratorError(
                f"run {run_id} is not running (`opsloop show {run_id}` shows its state)"
            )
        for iid in open_ids:
            self._people.forget(iid)
        self._runner.cancel(run_id)
        self._live.forget(run_id)
        view = self.view(run_id)
        self._run_finished(view)
        self._live.notify()
        return view

    def retry(self, run_id: str, step_id: str | None, by: str) -> RunView:
        """Retry a failed step (or every failed one) and what it left undone."""
        self._check_change(run_id, by, "retry")
        self._recovery.retry(run_id, step_id, by)
        return self.view(run_id)

    def schedules(self) -> list[ScheduleView]:
        """Every schedule, the soonest to fire first (removed ones last)."""
        return schedules.list_schedules(self.engine)

    def pause_schedule(self, schedule_id: str, by: str, reason: str = "") -> ScheduleView:
        """Stop a schedule firing until resumed; audited with who and why."""
        self._gate.check_schedules(by, "schedule.pause", schedule_id)
        return schedules.pause(self.engine, schedule_id, by, reason, self.clock.now())

    def resume_schedule(self, schedule_id: str, by: str) -> ScheduleView:
        """Let a paused schedule fire again from its next fire time; audited."""
        self._gate.check_schedules(by, "schedule.resume", schedule_id)
        view = schedules.resume(self.engine, schedule_id, by, self.clock.now())
        if self._started:
            self._schedules.check()  # its next fire may be sooner than the timer's
        return view

    def run_schedule_now(self, schedule_id: str, by: str) -> str:
        """Start a schedule's run now, as its fire would; audited as `by`'s."""
        name = schedule_id.partition("/")[0]
        if name in self.workflows:
            self._gate.check_start(by, self.workflow(name), None)
        return self._schedules.run_now(schedule_id, by)

    @property
    def access(self) -> AccessPolicy:
        """Who may do what (access.py): front ends ask it what to show."""
        return self._services.access

    def _check_change(self, run_id: str, by: str, what: str) -> None:
        run = self.view(run_id)
        self._gate.check_change(run, self._services.known_workflow_of(run), by, what)

    def _adopt(self, run_id: str) -> None:
        """A run committed by another path (a schedule's fire): tell of it and advance it,
        on the pool, so the thread firing a thousand due schedules only commits fires."""
        self._advancer.submit(self._kick, run_id)

    def _kick(self, run_id: str) -> None:
        """A run just committed: tell the front end, then make its first pass."""
        self._services.front_end.run_started(self.view(run_id))
        self._advancer.advance(run_id)

    def _cancelled_elsewhere(self, run_id: str) -> None:
        """A run was cancelled in the database by a schedule's fire (cancel_previous)."""
        self._runner.cancel(run_id)
        self._live.forget(run_id)
        self._services.front_end.run_finished(self.view(run_id))

    def _run_finished(self, run: RunView) -> None:
        self._services.front_end.run_finished(run)
        self._schedules.run_finished(run)

    def rerun(self, run_id: str, by: str) -> str:
        """Start a new run of the same workflow with the same params."""
        old = self.view(run_id)
        return self.start_run(old.workflow, old.params, started_by=by, rerun_of=run_id)


__all__ = ["AlreadyAnswered", "Orchestrator"]
