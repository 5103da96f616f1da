"""A run's steps as this process's passes left them, kept between passes.

A pass used to read every step row of its run and look at every step to find what
could start, so each pass cost the run's size and a run cost its size squared
(issue 16: 5.8 s for a fan-out of 2,000 no-op steps). A `RunState` is patched with each
change this process commits or hears of (a worker's claim, a recorded outcome), and
keeps the steps that could start in a heap in start order: a pass then costs what it
changes. It is rebuilt from the database when `workflow_run.version` shows that
something else changed the run (`runs.set_step`, `runs.set_run`; scheduler.run_pass).
"""

from __future__ import annotations

import heapq
import threading
from collections import Counter
from collections.abc import Iterator, Mapping
from collections.abc import Set as AbstractSet
from dataclasses import fields, replace
from typing import Any

from orchestrator.errors import ExpressionError
from orchestrator.planning import Readiness
from orchestrator.protocol import RunView, StepView
from orchestrator.workflow.definitions import Workflow
from orchestrator.workflow.expressions import should_run
from storage.statuses import FINISHED_STEP, StepStatus

_STEP_FIELDS = frozenset(f.name for f in fields(StepView))


def patched(view: StepView, values: Mapping[str, Any]) -> StepView:
    """`dataclasses.replace(view, **values)` without its per-call work (field walk,
    __init__): a view is patched two or three times per step (issue 16's profile)."""
    if not values.keys() <= _STEP_FIELDS:
        return replace(view, **values)  # says which name is wrong
    new = object.__new__(StepView)
    new.__dict__.update(view.__dict__)
    new.__dict__.update(values)
    return new


class RunState:
    """The run's view, the count of steps per status, and the steps that could start."""

    def __init__(
        self, wf: Workflow, run: RunView, version: int, inflight: AbstractSet[str]
    ) -> None:
        self.wf, self.version = wf, version
        # The step views in a list patched in place, made a RunView (one tuple copy) only
        # when `run` is read: a RunView per change copied all N views (issue 16: 3 copies
        # per step, the cost that still grew with the run's size).
        self._run, self._views, self._fresh = run, list(run.steps), True
        self._positions = run.positions
        self._order = {s.id: i for i, s in enumerate(wf.start_order)}
        self._dependents: dict[str, list[str]] = {}
        for step in wf.steps:
            for need in step.needs:
                self._dependents.setdefault(need, []).append(step.id)
        self._status: dict[str, str] = {s.step_id: s.status for s in run.steps}
        self._counts = Counter(self._status.values())
        self._unmet = {
            s.id: sum(self._status.get(n) not in FINISHED_STEP for n in s.needs) for s in wf.steps
        }
        # Pending in the view but handed to a worker here, which claims it: counts as running.
        self._handed = {s for s in inflight if self._status.get(s) == StepStatus.PENDING}
        self._ready: set[str] = set()  # pending, needs finished, not handed out
        self.short = False  # readiness() left ready steps for want of a worker
        self._heap: list[tuple[int, str]] = []  # the same, in start order (stale entries too)
        for step_id, status in self._status.items():
            if status == StepStatus.PENDING:
                self._maybe_ready(step_id)

    def _maybe_ready(self, step_id: str) -> None:
        if (
            self._status.get(step_id) == StepStatus.PENDING
            and self._unmet.get(step_id) == 0
            and step_id not in self._handed
            and step_id not in self._ready
        ):
            self._ready.add(step_id)
            heapq.heappush(self._heap, (self._order[step_id], step_id))

    def apply(self, step_id: str, **values: Any) -> None:
        """A committed change to one step."""
        i = self._positions.get(step_id)
        if i is None:
            return
        self._views[i] = patched(self._views[i], values)
        self._fresh = False
        old = self._status.get(step_id)
        new = values.get("status", old)
        if new == old or old is None:
            return
        self._status[step_id] = new
        self._counts[old] -= 1
        self._counts[new] += 1
        if old == StepStatus.PENDING:
            self._ready.discard(step_id)
            self._handed.discard(step_id)
        was, now = old in FINISHED_STEP, new in FINISHED_STEP
        for dependent in self._dependents.get(step_id, ()) if was != now else ():
            self._unmet[dependent] += -1 if now else 1
            if now:
                self._maybe_ready(dependent)
            else:
                self._ready.discard(dependent)
        if new == StepStatus.PENDING:
            self._maybe_ready(step_id)

    def set_fields(self, **values: Any) -> None:
        """A committed change to the run row (its status, error)."""
        self._run = replace(self.run, **values)
        self._run.__dict__["positions"] = self._positions  # the same steps in the same places

    @property
    def run(self) -> RunView:
        """The run as this state has it now (built once per batch of changes)."""
        if not self._fresh:
            self._run = replace(self._run, steps=tuple(self._views))
            self._run.__dict__["positions"] = self._positions
            self._fresh = True
        return self._run

    @property
    def status(self) -> str:
        """The run's status (without building the view)."""
        return self._run.status

    def readiness(self, workers: int | None = None) -> Readiness:
        """What the pass may do now, costing the steps it decides, not the run: ready
        steps start longest chain ahead first (`Workflow.start_order`), within the
        workflow's max_parallel and the `workers` free for them.

        Ready steps are taken in start order until the free room is filled; the rest
        are decided by later passes, as slots free up (so a skip behind a full run of
        `max_parallel` steps is recorded when one ends). `short`: ready steps were left
        for want of a worker (taking them all each pass cost the run's size again)."""
        running = self._counts[StepStatus.RUNNING] + len(self._handed)
        waiting = self._counts[StepStatus.WAITING] > 0
        room = (self.wf.max_parallel or len(self.wf.steps)) - running
        room = room if workers is None or workers >= room else workers
        start: list[str] = []
        skip: list[str] = []
        fail: list[tuple[str, str]] = []
        taken: list[tuple[int, str]] = []
        decided: set[str] = set()
        results = _Results(self._views, self._positions)
        while self._heap and len(start) < room:
            entry = heapq.heappop(self._heap)
            step_id = entry[1]
            if step_id not in self._ready or step_id in decided:
                continue  # no longer ready (started, skipped, handed out), or a duplicate
            taken.append(entry)
            decided.add(step_id)
            try:
                go = should_run(self.wf, step_id, self._run.params, results)
            except ExpressionError as exc:
                fail.append((step_id, str(exc)))
                continue
            (start if go else skip).append(step_id)
        for entry in taken:  # still pending until the pass commits what it decided
            heapq.heappush(self._heap, entry)
        self.short = room == workers and len(self._ready) > len(decided)
        active = running > 0 or waiting
        return Readiness(tuple(start), tuple(skip), active, waiting and running == 0, tuple(fail))


class _Results(Mapping[str, Mapping[str, Any]]):
    """{step id: {"status", "outputs"}} as conditions read them, looked up per step."""

    def __init__(self, views: list[StepView], positions: Mapping[str, int]) -> None:
        self._views, self._positions = views, positions

    def __getitem__(self, step_id: str) -> Mapping[str, Any]:
        view = self._views[self._positions[step_id]]
        return {"status": view.status, "outputs": view.outputs or {}}

    def __iter__(self) -> Iterator[str]:
        return iter(self._positions)

    def __len__(self) -> int:
        return len(self._views)


class RunMemory:
    """Per run this process advances: its state between passes."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._states: dict[str, RunState] = {}
        self._taken: set[str] = set()  # a pass holds the run's state
        self._lost: set[str] = set()  # ...and it was forgotten meanwhile: not kept

    def take(self, run_id: str) -> RunState | None:
        """The run's state (None: rebuild it)."""
        with self._lock:
            self._taken.add(run_id)
            return self._states.pop(run_id, None)

    def keep(self, run_id: str, state: RunState | None) -> None:
        """The pass that took the run's state is over; `state` for the next (None: none)."""
        with self._lock:
            self._taken.discard(run_id)
            if state is not None and run_id not in self._lost:
                self._states[run_id] = state
            self._lost.discard(run_id)

    def forget(self, run_id: str) -> None:
        """Read the run again at its next pass (a claim here was lost and the view cannot
        say why, or the run ended or was cancelled here)."""
        with self._lock:
            self._states.pop(run_id, None)
            if run_id in self._taken:
                self._lost.add(run_id)
