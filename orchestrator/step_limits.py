"""What keeps one step or one workflow from taking the process: a default timeout for
steps that name none, and a share of the worker pool per workflow.

Without them, 16 `sleep infinity` steps took all 16 workers and every other run in the
process stopped while /healthz stayed green (issue 16). Steps of a workflow past its
share stay `pending` (not queued on the pool), so other workflows' steps still start;
when one of its steps ends, the runs it held back get a pass. A step resumed outside a
pass (after an answer, or restarted by recovery) is already `running` in the database:
past the share, it is marked held there (held_steps.py: recovery resumes it, as one
that had not started) and waits here for one of its workflow's steps to end.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass

DEFAULT_STEP_TIMEOUT_S = 3600.0  # OPSLOOP_STEP_TIMEOUT's default: 1 h


@dataclass(frozen=True)
class StepLimits:
    """`default_timeout_s`: for steps without `timeout` (None: none); `workflow_workers`:
    steps of one workflow running at once in this process (None: the whole pool)."""

    default_timeout_s: float | None = None
    workflow_workers: int | None = None

    def timeout_of(self, step_timeout_s: float | None) -> float | None:
        """A step's own `timeout` wins; else the default."""
        return step_timeout_s if step_timeout_s is not None else self.default_timeout_s


def workflow_share(max_workers: int) -> int:
    """The default share: all but a quarter of the pool (at least one worker kept free)."""
    return max_workers if max_workers == 1 else max_workers - max(1, max_workers // 4)


Start = Callable[[], None]


class WorkerShare:
    """Counts each workflow's steps handed to workers; grants new ones up to the limit.

    A run is known here (`tracked`) only while it counts a step, has steps held back or
    a resumed step waiting: a run cancelled here or finished by another replica leaves
    nothing behind (`forget` is called only for a run a pass here finished)."""

    def __init__(self, limit: int | None, wake: Callable[[str], None]) -> None:
        self._limit = limit
        self._wake = wake  # gives a held-back run a pass
        self._lock = threading.Lock()
        self._running: dict[str, set[tuple[str, str]]] = {}  # workflow -> (run, step)
        self._workflow: dict[str, str] = {}  # run -> workflow
        self._held: dict[str, set[str]] = {}  # workflow -> runs with steps held back
        self._waiting: dict[str, deque[tuple[str, str, Start]]] = {}  # resumes past the share

    def tracked(self) -> int:
        """How many runs it keeps anything for (bounded by the runs under way here)."""
        with self._lock:
            return len(self._workflow)

    def admit(self, run_id: str, workflow: str, step_id: str) -> bool:
        """A step resumed outside a pass: True if its workflow has room now (it counts
        until `release`: the caller starts it); False if not, and nothing is kept for it
        (the caller marks it held, then hands it to `wait`)."""
        if self._limit is None:
            return True
        with self._lock:
            running = self._running.setdefault(workflow, set())
            if (run_id, step_id) not in running and len(running) >= self._limit:
                return False
            self._workflow[run_id] = workflow
            running.add((run_id, step_id))
            return True

    def wait(self, run_id: str, workflow: str, step_id: str, start: Start) -> None:
        """A step `admit` refused: `start()` once one of its workflow's steps stops (it
        then counts until `release`), or at once if room came since, in the order they
        came. Apart from `admit`, so that `start` never comes before the caller's mark."""
        with self._lock:
            self._workflow[run_id] = workflow
            self._running.setdefault(workflow, set())
            self._waiting.setdefault(workflow, deque()).append((run_id, step_id, start))
            starts = self._room(workflow)
        for begin in starts:
            begin()

    def _room(self, workflow: str) -> list[Start]:
        """Under the lock: resumes that fit now, counted as running (started after it)."""
        waiting, running = self._waiting.get(workflow), self._running.get(workflow, set())
        starts = []
        while waiting and len(running) < (self._limit or 0):
            run_id, step_id, start = waiting.popleft()
            running.add((run_id, step_id))
            starts.append(start)
        if not waiting:
            self._waiting.pop(workflow, None)
        return starts

    def _tidy(self, workflow: str, run_ids: Iterable[str]) -> None:
        """Under the lock: forget the workflow of runs that count nothing here any more."""
        running = self._running.get(workflow, set())
        busy = {run for run, _ in running} | self._held.get(workflow, set())
        busy.update(run for run, _, _ in self._waiting.get(workflow, ()))
        for run_id in set(run_ids) - busy:
            self._workflow.pop(run_id, None)

    def grant(self, run_id: str, workflow: str, ready: tuple[str, ...]) -> tuple[str, ...]:
        """Which of `ready` may start now; they count as running until `release`. Asking
        again for the same steps (a retried pass) grants them again without counting twice."""
        if self._limit is None:
            return ready
        with self._lock:
            self._workflow[run_id] = workflow
            running = self._running.setdefault(workflow, set())
            room = self._limit - len(running - {(run_id, s) for s in ready})
            granted = ready[: max(room, 0)]
            running.update((run_id, s) for s in granted)
            if len(granted) < len(ready):
                self._held.setdefault(workflow, set()).add(run_id)
            self._tidy(workflow, (run_id,))
            return granted

    def for_pass(self, run_id: str) -> PassGrants:
        """The `grant` for one pass over `run_id` (all its attempts)."""
        return PassGrants(self, run_id)

    def give_back(self, run_id: str, step_ids: Iterable[str], *, wake: bool, own: bool) -> None:
        """Steps granted but never handed to a worker here; `wake`: the runs held back get
        a pass (`own`: `run_id` too, when no step of its own ends to give it one)."""
        if self._limit is None:
            return
        with self._lock:
            workflow = self._workflow.get(run_id, "")
            running = self._running.get(workflow, set())
            gone = {(run_id, s) for s in step_ids} & running
            running.difference_update(gone)
            starts = self._room(workflow)
            held = self._held.pop(workflow, set()) if gone and wake else set()
            self._tidy(workflow, {run_id, *held})
        for start in starts:
            start()
        for other in held if own else held - {run_id}:
            self._wake(other)

    def release(self, run_id: str, step_id: str) -> None:
        """A step stopped running here: the runs of its workflow held back get a pass."""
        if self._limit is None:
            return
        with self._lock:
            workflow = self._workflow.get(run_id)
            running = self._running.get(workflow or "", set())
            if workflow is None or (run_id, step_id) not in running:
                return
            running.discard((run_id, step_id))
            starts = self._room(workflow)
            held = self._held.pop(workflow, set())
            self._tidy(workflow, {run_id, *held})
        for start in starts:  # a resumed step that waited for room: before any new one
            start()
        for other in held - {run_id}:  # its own run gets its pass from the step's end
            self._wake(other)

    def forget(self, run_id: str) -> None:
        """The run ended: whatever it still counted is released."""
        if self._limit is None:
            return
        with self._lock:
            workflow = self._workflow.pop(run_id, None)
            if workflow is None:
                return
            running = self._running.get(workflow, set())
            running.difference_update({key for key in running if key[0] == run_id})
            self._held.get(workflow, set()).discard(run_id)
            waiting = self._waiting.get(workflow, deque())
            kept = [w for w in waiting if w[0] != run_id]
            waiting.clear()
            waiting.extend(kept)
            starts = self._room(workflow)
        for start in starts:
            start()


class PassGrants:
    """What one pass over a run was granted. An attempt rolled back (StaleRun, storage)
    handed nothing out, so the next attempt's grant replaces its; a claim another replica
    won is not run here. Either, left counted, kept the workflow's share for good."""

    def __init__(self, share: WorkerShare, run_id: str) -> None:
        self._share, self._run_id = share, run_id
        self._granted: tuple[str, ...] = ()

    def __call__(self, workflow: str, ready: tuple[str, ...]) -> tuple[str, ...]:
        # Its own run needs no wake: this attempt grants again at once.
        self._share.give_back(self._run_id, self._granted, wake=True, own=False)
        self._granted = self._share.grant(self._run_id, workflow, ready)
        return self._granted

    def settle(self, handed: Iterable[str], *, failed: bool = False) -> None:
        """The pass is over: what it granted but did not hand to a worker is given back
        (no wake after a failed pass: with storage down, that would be a loop of passes)."""
        left = set(self._granted) - set(handed)
        self._share.give_back(self._run_id, left, wake=not failed, own=True)
