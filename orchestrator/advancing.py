"""Advancing runs: scheduling passes, and the pool of workers that runs their steps.

Every transition is a conditional UPDATE committed before anything acts on it: a step
is claimed pending -> running before it runs, and its result is recorded by the next
pass (orchestrator/scheduler.py) in the transaction that claims what it unblocks.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from itertools import islice
from typing import Any

from sqlalchemy.engine import Connection

from orchestrator import held_steps, log_context, passing, recording, scheduler, stepwork
from orchestrator.execution import StepEnd, StepRunner
from orchestrator.live import LiveRuns
from orchestrator.protocol import RunView
from orchestrator.run_lock import RunLocks
from orchestrator.runstate import RunState
from orchestrator.services import Services
from orchestrator.step_limits import WorkerShare
from orchestrator.step_pool import StepPool
from storage.statuses import FINISHED_RUN, StepStatus

log = logging.getLogger(__name__)
OnPause = Callable[[str, str, Any], None]  # a paused step: run id, step id, its interrupt
Settle = Callable[[bool], None]  # a pass made in another's transaction: did it commit?


class Advancer:
    """Makes passes over runs and runs the steps they start on a bounded pool."""

    def __init__(
        self, services: Services, live: LiveRuns, runner: StepRunner, *,
        max_workers: int, on_pause: OnPause, on_finished: Callable[[RunView], None],
    ) -> None:  # fmt: skip
        self._services, self._live, self._runner, self._on_pause = services, live, runner, on_pause
        self._on_finished = on_finished  # a run ended in a pass: tell, count schedule failures
        self.max_workers = max_workers
        self._pool = StepPool(max_workers)
        share = services.limits.workflow_workers  # held-back runs get a pass as it frees up
        self._share = WorkerShare(share, lambda run_id: self.submit(self.advance, run_id))
        self._guard = threading.Lock()
        self.run_lock = RunLocks()  # run_lock(run_id): what a pass over the run holds
        # Steps this process dispatched and is still running: (run id, step id). A pass
        # counts them as running even if the view it read predates their claim.
        self._inflight: set[tuple[str, str]] = set()
        # Per run: steps whose work ended, for the next pass to record.
        self._outcomes: dict[str, list[scheduler.Outcome]] = {}
        # Runs a thread is making passes over, and runs that need one more pass.
        self._passing: set[str] = set()
        self._pass_wanted: set[str] = set()
        # Runs with ready steps left pending for want of a free worker, in the order they
        # came: a pass that leaves workers free gives them a pass (scheduler.Pass.short).
        self._short: dict[str, None] = {}
        self._idle = threading.Condition(self._guard)  # notified as steps and passes end
        self._ending = 0  # steps ended, not yet passed over; answers' passes not settled
        self.draining = False  # a graceful stop: passes record results, nothing starts or resumes
        self._stopped = False  # after the grace period: no passes at all

    def close(self) -> None:
        """Let running work finish (not after a drain: a python step cannot be killed); what
        it would start next is left to the database (a later process's sweep continues it)."""
        self._pool.close(wait=not self._stopped)

    def drain(self, timeout: float) -> bool:
        """Start no more steps; wait up to `timeout` s for those on the pool (resumed ones
        too) to end and be recorded. True if none is left running."""
        deadline = time.monotonic() + timeout
        with self._guard:
            self.draining = True
            while self._inflight or self._passing or self._ending:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._idle.wait(min(left, 0.5))
        return True

    def running(self) -> set[tuple[str, str]]:
        with self._guard:  # what this process runs (or has queued) now: (run id, step id)
            return set(self._inflight)

    def stop_passes(self) -> None:
        """Record nothing more: what a step still running ends with is left to recovery
        (its process is about to be killed, which is not how the step ended)."""
        with self._guard:
            self._stopped = True

    # -- passes -------------------------------------------------------------------

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
        with self._guard:
            self._pass_wanted.add(run_id)
            if run_id in self._passing:
                return
            self._passing.add(run_id)
        on_worker, handed_off, again = self._pool.on_worker, False, False
        try:
            while self._take_pass(run_id, handed_off):
                if again:  # a step kept for this worker starts now, not after this pass
                    self._pool.hand_kept()
                again = True
                with self.run_lock(run_id):
                    self._pass(run_id)
                handed_off = not on_worker
        except BaseException:
            with self._guard:
                self._passing.discard(run_id)
            raise
        if handed_off and run_id in self._pass_wanted:
            self.submit(self.advance, run_id)
        self._live.notify()

    def _take_pass(self, run_id: str, handed_off: bool) -> bool:
        """Whether this thread makes another pass over `run_id` (it stops passing if not)."""
        with self._guard:
            if run_id not in self._pass_wanted or handed_off:
                self._passing.discard(run_id)
                self._idle.notify_all()
                return False
            self._pass_wanted.discard(run_id)
            if self._stopped:
                self._passing.discard(run_id)
                self._idle.notify_all()
                return False
            return True

    def _pass(self, run_id: str) -> None:
        """One scheduling pass (orchestrator/scheduler.py), then act on what it committed."""
        with self._guard:
            outcomes = self._outcomes.pop(run_id, [])
            # Resumed steps count too: more of them than workers claims none.
            free = 0 if self.draining else max(0, self.max_workers - len(self._inflight))
        try:
            grant = self._share.for_pass(run_id)  # what it grants and does not hand out
            commit = lambda o: passing.commit_pass(  # noqa: E731
                self._services, self._live, run_id, o, self._inflight_of, free, grant
            )
            done = recording.commit_outcomes(self._services, run_id, outcomes, commit)
        except BaseException:
            grant.settle((), failed=True)
            with self._guard:  # not recorded: the next pass tries again
                self._outcomes.setdefault(run_id, [])[:0] = outcomes
            raise
        grant.settle([c.step.id for c in done.claimed])
        if done.run is not None:
            self._act(done)
        self._want_workers(run_id, done.short, free - len(done.claimed))

    def _want_workers(self, run_id: str, short: bool, left: int) -> None:
        """`run_id` has steps waiting for a worker (`short`) or not; `left` workers its
        pass did not take go to the runs that wait, a pass each, in the order they came."""
        with self._guard:
            if short:
                self._short[run_id] = None
            else:
                self._short.pop(run_id, None)
            # Not the whole list per pass: thousands of runs may wait for a worker.
            woken = list(islice((r for r in self._short if r != run_id), max(left, 0)))
            # A worker freed while this pass was made went to no run if the pass that freed
            # it ended before `run_id` was put here: then it goes to `run_id` now.
            free = 0 if self.draining else self.max_workers - len(self._inflight)
            again = short and free > len(woken)
            if again and run_id in self._passing:  # its passing thread makes one more
                self._pass_wanted.add(run_id)
            elif again:
                woken.append(run_id)
            for other in woken:
                del self._short[other]
        for other in woken:
            self.submit(self.advance, other)

    def handed(self, run_id: str) -> frozenset[str]:
        """Steps of `run_id` this process dispatched or runs (a state kept for the run's
        next pass counts them as running)."""
        return self._inflight_of(run_id)

    def pass_within(self, conn: Connection, run_id: str, state: RunState) -> Settle:
        """A pass over `run_id` in the caller's transaction, from `state` (the run as it
        left it); call what it returns with whether that transaction committed."""
        with self._guard:  # a drain waits for it to settle, as for a pass of its own
            free = 0 if self.draining else max(0, self.max_workers - len(self._inflight))
            self._ending += 1
        grant = self._share.for_pass(run_id)
        try:
            done = passing.pass_within(conn, self._services, self._live, run_id, state,
                                       self._inflight_of, free, grant)  # fmt: skip
        except BaseException:
            self._ended()
            raise

        def settle(committed: bool) -> None:
            try:
                handed = [c.step.id for c in done.claimed]
                grant.settle(handed if committed else (), failed=not committed)
                if committed and done.run is not None:
                    self._act(done)
                    self._live.notify()
                if committed and done.short:
                    self._want_workers(run_id, True, 0)
            finally:
                self._ended()

        return settle

    def _ended(self) -> None:
        with self._guard:
            self._ending -= 1
            self._idle.notify_all()

    def _inflight_of(self, run_id: str) -> frozenset[str]:
        with self._guard:
            return frozenset(step for rid, step in self._inflight if rid == run_id)

    def _act(self, done: scheduler.Pass) -> None:
        run = done.run
        assert run is not None
        self._live.track(run)
        if run.status not in FINISHED_RUN:
            with self._guard:
                self._inflight.update((run.id, c.step.id) for c in done.claimed)
        for step_id, _values in done.changed:
            self._services.front_end.step_changed(run, run.step(step_id))
        for step_id in done.dropped:
            if run.step(step_id).status == StepStatus.RUNNING:
                log.warning("run %s: step %s was taken over by another replica while it ran "
                            "here; its result here is dropped", run.id, step_id)  # fmt: skip
        for started in done.claimed:
            if stepwork.can_pause(started.step):
                self._services.saver.new_thread(started.thread_id)
            args = (run.id, started.step.id, started.thread_id, None, run)
            if not self._pool.keep(self._run_step, *args):  # the worker passing runs it next
                self.submit(self._run_step, *args)
        if done.finished:
            self._share.forget(run.id)
            self._on_finished(run)

    # -- steps --------------------------------------------------------------------

    def resume_step(
        self, run_id: str, step_id: str, thread_id: str, resume: Mapping[str, Any] | None,
        workflow: str, *, run: RunView | None = None, asked: str | None = None,
    ) -> None:  # fmt: skip
        """Run a step again on the pool: resumed with an answer, or restarted by recovery;
        within its workflow's share of the workers (else many answers took them all).
        Past the share it is marked held (held_steps.py) before it waits for room, so a
        crash meanwhile leaves it to be resumed, not questioned as if cut off mid-flight.
        `run`: the run as just read (a held step reads it when it starts); `asked`: the
        interaction the answer closed, which the resumed step does not open again."""
        if asked is not None:
            self._runner.promise_asked(asked)
        if self._share.admit(run_id, workflow, step_id):
            self._hand_resumed(run_id, step_id, thread_id, resume, run, held=False)
            return
        held_steps.hold(self._services, run_id, step_id, self._services.clock.now())
        self._share.wait(run_id, workflow, step_id, lambda: self._hand_resumed(
            run_id, step_id, thread_id, resume, None, held=True))  # fmt: skip

    def _hand_resumed(
        self, run_id: str, step_id: str, thread_id: str, resume: Mapping[str, Any] | None,
        run: RunView | None, *, held: bool,
    ) -> None:  # fmt: skip
        """A resumed step the share admitted goes to a worker; it counts as running here
        (a drain waits for it, its lease is kept) until it ends. In a drain it does not
        start: it stays `running`, marked held, for the next start to resume."""
        with self._guard:  # as drain() reads it: a step it does not wait for never starts
            go = not self.draining
            if go:
                self._inflight.add((run_id, step_id))
        if go:
            self.submit(self._run_step, run_id, step_id, thread_id, resume, run, held)
            return
        self._share.release(run_id, step_id)
        if not held:
            held_steps.hold(self._services, run_id, step_id, self._services.clock.now())

    def _run_step(
        self, run_id: str, step_id: str, thread_id: str,
        resume: Mapping[str, Any] | None, run: RunView | None = None, held: bool = False,
    ) -> None:  # fmt: skip
        """On a worker: execute the step, leave how it ended for the next pass, advance.
        A `held` step first loses its mark (committed before its code runs again); one
        that stopped running here while it waited (cancelled) does not run. A pause is
        parked once the step no longer counts here: an answer given already resumes it
        inside `_on_pause`, and that run must not be uncounted by this one's end."""
        end, interrupt = None, None
        try:  # a failure anywhere still uncounts it (else every later drain timed out)
            try:
                if not held or held_steps.start(self._services, run_id, step_id):
                    with log_context.bound(run_id=run_id, step_id=step_id):
                        end = self._runner.execute(run_id, step_id, thread_id, resume, run)
                if end is not None and end.interrupt is None:
                    self._outcome(run_id, step_id, end)
            finally:
                interrupt = None if end is None else end.interrupt
                with self._guard:
                    self._inflight.discard((run_id, step_id))
                    self._ending += 1
                self._share.release(run_id, step_id)
            if interrupt is not None:
                self._on_pause(run_id, step_id, interrupt)
            with log_context.bound(run_id=run_id):
                self.advance(run_id)  # the pass that records the outcome, or a later one
        finally:
            self._ended()

    def _outcome(self, run_id: str, step_id: str, end: StepEnd) -> None:
        """Leave how a step ended for the next pass (recording.outcome_of says what a
        crash before that pass commits finds)."""
        outcome = recording.outcome_of(step_id, end, self._services.clock.now())
        with self._guard:
            self._outcomes.setdefault(run_id, []).append(outcome)

    def submit(self, fn: Callable[..., None], *args: Any) -> None:
        """Run `fn(*args)` on the step pool (step_pool.py): failures logged, not lost."""
        self._pool.submit(fn, *args)
