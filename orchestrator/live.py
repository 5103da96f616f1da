"""What this process knows about the runs it is advancing, and who waits on them.

Per active run: its newest view, patched with each change this process commits, so
telling the front end costs no query; and the step views by row version, so a pass
re-reads the run cheaply. `wait()` wakes whenever anything changes here.
"""

from __future__ import annotations

import threading
import time
from dataclasses import replace
from typing import Any

from orchestrator import runs
from orchestrator.protocol import RunView, StepView
from orchestrator.runstate import RunMemory, patched
from orchestrator.services import Services
from storage.statuses import FINISHED_RUN, RunStatus, StepStatus


class LiveRuns:
    def __init__(self, services: Services) -> None:
        self._services = services
        self._lock = threading.Lock()
        self._latest: dict[str, RunView] = {}
        # Per run, `_latest`'s step views as a list, patched in place: a change costs one
        # tuple copy (C speed), not a RunView.with_step per step of a wide run.
        self._lists: dict[str, list[StepView]] = {}
        self._views: dict[str, runs.ViewCache] = {}
        self._changed = threading.Condition()
        self.memory = RunMemory()  # each run's state between passes (runstate.py)

    def cache(self, run_id: str) -> runs.ViewCache:
        """The run's step views by row version (scheduler.run_pass reads and fills it)."""
        with self._lock:
            return self._views.setdefault(run_id, {})

    def track(self, run: RunView) -> None:
        """Keep `run` as the newest view of an active run; drop a finished one."""
        with self._lock:
            self._lists.pop(run.id, None)
            if run.status in FINISHED_RUN:
                self._latest.pop(run.id, None)
                self._views.pop(run.id, None)
                self.memory.forget(run.id)
            else:
                self._latest[run.id] = run

    def forget(self, run_id: str) -> None:
        """Drop what this process keeps about a run that ended or was cancelled."""
        with self._lock:
            self._latest.pop(run_id, None)
            self._lists.pop(run_id, None)
            self._views.pop(run_id, None)
        self.memory.forget(run_id)

    def step_changed(
        self, run_id: str, step_id: str, *, fallback: RunView | None = None, **committed: Any
    ) -> None:
        """Tell the front end about a change just committed: `committed` holds its values.
        `fallback`: the run with that change, if the caller holds it (else it is read)."""
        with self._lock:
            run = self._latest.get(run_id)
            i = None if run is None else run.positions.get(step_id)
            if run is not None and i is not None:
                views = self._lists.get(run_id)
                if views is None:
                    views = self._lists[run_id] = list(run.steps)
                views[i] = patched(views[i], committed)
                positions, run = run.positions, replace(run, steps=tuple(views))
                run.__dict__["positions"] = positions  # the same steps in the same places
                self._latest[run_id] = run
        if run is None:  # not a run this process is advancing
            run = fallback or self._services.view(run_id)
        self._services.front_end.step_changed(run, run.step(step_id))
        self.notify()

    def notify(self) -> None:
        with self._changed:
            self._changed.notify_all()

    def wait(self, run_id: str, timeout: float = 60.0) -> RunView:
        """Block until the run is finished or nothing can move without a person."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                run = self._services.view(run_id)
                busy = any(s.status == StepStatus.RUNNING for s in run.steps)
                if run.status in FINISHED_RUN or (run.status == RunStatus.WAITING and not busy):
                    return run
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"run {run_id} still {run.status} after {timeout} s")
                self._changed.wait(min(left, 0.5))
