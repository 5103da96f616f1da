"""Running one step on a worker: its work, in its LangGraph thread when it may pause,
and the shell processes it starts (which a cancel kills, here or from elsewhere).

Why not one LangGraph graph per workflow: LangGraph runs nodes in lockstep supersteps
and a pending interrupt stops the whole graph, so a workflow graph would wait for each
level's slowest step and freeze every branch beside a gate
(../shared/notes/langgraph.md). Here each step that may pause is its own thread, and
a gate parks only its own step. Steps that cannot pause (shell, tasks without `ctx`)
need nothing from LangGraph and run without a graph: for them LangGraph would only save
the result, which costs more CPU than the step's whole bookkeeping (docs/benchmarks.md).
"""

from __future__ import annotations

import logging
import subprocess
import threading
import traceback
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from orchestrator import runs, stepwork
from orchestrator.actions import kill_process_group
from orchestrator.errors import StepFailed
from orchestrator.live import LiveRuns
from orchestrator.protocol import RunView
from orchestrator.services import Services
from orchestrator.stepgraph import StepResult
from storage.engine import read_transaction
from storage.statuses import StepStatus

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class StepEnd:
    """How one execution of a step ended: succeeded, failed, or paused at a question
    (`interrupt` is LangGraph's pending interrupt; status WAITING)."""

    status: StepStatus
    outputs: dict[str, Any] | None = None
    error: str | None = None
    interrupt: Any = None


class StepRunner:
    """Executes steps and keeps track of the processes they start."""

    def __init__(self, services: Services, live: LiveRuns) -> None:
        self._services = services
        self._live = live
        self._lock = threading.Lock()
        self._procs: dict[tuple[str, str], subprocess.Popen] = {}
        # Runs this process cancelled: a step claimed before the cancel must not start.
        self._cancelled: set[str] = set()
        # A running python attempt's ctx.cancelled: a cancel tells the task (it cannot be killed).
        self._told: dict[tuple[str, str], threading.Event] = {}
        # Interactions a resumed step finds already open: its ask() inserts nothing.
        self._asked: set[str] = set()

    def execute(
        self, run_id: str, step_id: str, thread_id: str,
        resume: Mapping[str, Any] | None, run: RunView | None = None,
    ) -> StepEnd | None:  # fmt: skip
        """Run (or resume) one step; None if its run was cancelled before it started.

        `run` is the view the step was dispatched from: its needs had finished by then,
        so their outputs in it are final. A step that may wait for a person runs in its
        LangGraph thread: interrupt() and Command(resume=...) pause and resume it.
        """
        try:
            if run is None:
                run = self._services.view(run_id)
            step = self._services.workflow_of(run).step(step_id)
            if self.is_cancelled(run_id):  # claimed, then cancelled before it started
                return None
            hooks = stepwork.StepHooks(
                process_started=lambda proc: self.process_started(run_id, step_id, proc),
                attempt_started=lambda n: self._live.step_changed(run_id, step_id, attempts=n),
                task_started=lambda told: self._task_started(run_id, step_id, told),
                opened=self._take_asked,
            )
            view = run

            def work() -> dict[str, Any]:
                return stepwork.work(self._services, view, step, thread_id, hooks)

            if resume is None and not stepwork.can_pause(step):
                result = StepResult(work(), None)
            else:
                result = self._services.graph.run(thread_id, work, resume)
        except StepFailed as exc:
            log.warning("step %s of run %s failed: %s", step_id, run_id, exc)
            return self._failed(str(exc), exc.outputs)
        except Exception as exc:
            scrub = self._services.scrubber.text
            log.error("step %s of run %s crashed\n%s", step_id, run_id,
                      scrub(traceback.format_exc()))  # fmt: skip
            return self._failed(f"{type(exc).__name__}: {exc}")
        finally:
            with self._lock:
                self._procs.pop((run_id, step_id), None)
                self._told.pop((run_id, step_id), None)
        if result.interrupt is not None:
            return StepEnd(StepStatus.WAITING, interrupt=result.interrupt)
        return StepEnd(StepStatus.SUCCEEDED, outputs=self._services.scrubber.value(result.outputs))

    def promise_asked(self, iid: str) -> None:
        """Promise that interaction `iid` exists (an answer closed it): the step that asked
        it resumes without writing it again, as RetryingSaver.new_thread spares a read."""
        with self._lock:
            self._asked.add(iid)

    def _take_asked(self, iid: str) -> bool:
        with self._lock:
            if iid in self._asked:
                self._asked.discard(iid)
                return True
            return False

    def _failed(self, error: str, outputs: dict[str, Any] | None = None) -> StepEnd:
        """A failure as it is stored and posted: without the bot's secrets (secrets.py)."""
        scrubber = self._services.scrubber
        return StepEnd(StepStatus.FAILED, error=scrubber.text(error),
                       outputs=scrubber.value(outputs))  # fmt: skip

    def process_started(self, run_id: str, step_id: str, proc: subprocess.Popen) -> None:
        """A shell step's process is up: cancel kills it. If the run was cancelled while the
        step was starting, kill it now (cancel marks the run before it looks for processes)."""
        with self._lock:
            self._procs[(run_id, step_id)] = proc
        if self.is_cancelled(run_id):
            kill_process_group(proc)

    def _task_started(self, run_id: str, step_id: str, told: threading.Event) -> None:
        with self._lock:
            self._told[(run_id, step_id)] = told
        if self.is_cancelled(run_id):  # cancelled while it was starting: see process_started
            told.set()

    def is_cancelled(self, run_id: str) -> bool:
        with self._lock:
            return run_id in self._cancelled

    def cancel(self, run_id: str) -> None:
        """The run was cancelled: start none of its steps, kill its processes."""
        with self._lock:
            self._cancelled.add(run_id)  # before the kills: see process_started
            procs = [p for (rid, _), p in self._procs.items() if rid == run_id]
            told = [e for (rid, _), e in self._told.items() if rid == run_id]
        for proc in procs:
            kill_process_group(proc)
        for event in told:
            event.set()

    def kill_all(self) -> set[tuple[str, str]]:
        """Kill every shell step's process (a graceful stop ran out of time); which steps."""
        with self._lock:
            procs = dict(self._procs)
        for proc in procs.values():
            kill_process_group(proc)
        return set(procs)

    def kill_cancelled(self) -> None:
        """Kill this process's shell steps whose run was cancelled elsewhere (`opsloop
        cancel` in another shell, another replica): `cancel` kills only its own."""
        with self._lock:
            procs = dict(self._procs)
        if not procs:
            return
        with read_transaction(self._services.engine) as conn:
            cancelled = runs.cancelled_steps(conn, {run_id for run_id, _ in procs})
        for key in cancelled & procs.keys():
            kill_process_group(procs[key])
