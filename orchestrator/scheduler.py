"""One scheduling pass over a run, in one transaction.

A pass records the steps that finished since the last one, skips what can no
longer run, claims what can start, and settles the run (running, waiting for a
person, or over). Doing all of it in one transaction is what keeps a wide run
fast: when sixteen steps finish together, their results and the claims of the
steps they unblock commit together instead of one by one (bench/engine.py).

The pass decides; the engine acts on what it returns, after the commit.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy.engine import Connection

from orchestrator import runs
from orchestrator.pass_writes import HeldWrites, StaleRun
from orchestrator.planning import run_outcome
from orchestrator.protocol import RunView
from orchestrator.runstate import RunState
from orchestrator.workflow.definitions import Step, Workflow
from storage.statuses import FINISHED_RUN, RunStatus, StepStatus


@dataclass(frozen=True)
class Outcome:
    """How a step's work ended, waiting to be recorded by the next pass."""

    step_id: str
    status: StepStatus
    at: datetime
    error: str | None = None
    outputs: dict[str, Any] | None = None


@dataclass(frozen=True)
class Claim:
    step: Step
    thread_id: str


@dataclass
class Pass:
    """What a committed pass changed, for the engine to act on."""

    run: RunView | None = None  # the run as the pass left it (None: no such run)
    changed: list[tuple[str, dict[str, Any]]] = field(default_factory=list)  # step, values
    claimed: list[Claim] = field(default_factory=list)  # marked running: submit them now
    # Ready steps left pending for want of a free worker: a pass claims them as one frees.
    short: bool = False
    # Steps whose outcome was not recorded: cancelled, or taken over by another replica.
    dropped: list[str] = field(default_factory=list)
    finished: bool = False  # the run ended in this pass
    state: RunState | None = None  # the run's state after the pass; None: read it again
    bumps: int = 0  # run-row changes this pass made (each raised the run's version)
    lost: bool = False  # a claim went to someone else: the state cannot say what they did
    # Step changes held back to go with the version bump (PostgreSQL, pass_writes.py).
    held: HeldWrites | None = None

    def set_step(self, step_id: str, **values: Any) -> None:
        """Record a committed change and apply it to the state (`run` is brought up to date
        when the pass ends: building it per change cost the run's size each time)."""
        assert self.state is not None
        self.changed.append((step_id, values))
        self.state.apply(step_id, **values)


def run_pass(
    conn: Connection,
    run_id: str,
    workflow_of: Callable[[RunView], Workflow],
    outcomes: Iterable[Outcome],
    *,
    state: RunState | None,
    inflight: Callable[[], frozenset[str]],
    free: int,
    now: datetime,
    new_thread_id: Callable[[str], str],
    ownership: dict[str, Any],
    cache: runs.ViewCache | None = None,
    grant: Callable[[str, tuple[str, ...]], tuple[str, ...]] | None = None,
) -> Pass:
    """Advance `run_id` as far as it goes without running anything; see the module doc.

    `state` is the run as this process's last pass left it (runstate.py); None: the run
    is read, and `inflight()` (steps handed to workers here) count as running whatever was
    read. A pass that changes the run raises its version; if that shows that something else
    changed the run since `state` was read, the pass raises `StaleRun` (the caller rolls
    it back and passes again from a fresh read). At most `free` steps are claimed (a worker
    each); the rest stay pending and ready (`done.short`). `cache` is the run's step views
    from earlier loads (`runs.load_run`). `done.state` is the state the pass leaves (None:
    read it again). `grant` keeps one workflow within its share of the workers
    (step_limits.py): steps it holds back stay pending and ready.
    """
    done = Pass()
    outcomes = list(outcomes)
    if state is None:
        state = _rebuild(conn, run_id, workflow_of, inflight(), cache)
        if state is None:
            return done
    elif conn.dialect.name == "postgresql":  # a kept state: its changes go with the bump
        done.held = HeldWrites(run_id)
    version = state.version
    done.state, done.run = state, state.run
    # Fenced by owner: if another replica took a step over (this one stopped renewing its
    # lease), that replica's run of the step is the one that counts.
    finished = {o.step_id: {**_finished_values(o), "updated_at": o.at} for o in outcomes}
    if done.held is not None:  # as if recorded; if one was not, the pass is made again
        done.held.add(finished, expect=StepStatus.RUNNING, owner=ownership["owner"])
        recorded = len(outcomes)
    else:
        recorded = runs.set_steps(
            conn, run_id, finished, expect=StepStatus.RUNNING, owner=ownership["owner"]
        )
    if recorded == len(outcomes):
        for o in outcomes:
            done.set_step(o.step_id, **_finished_values(o))
    else:  # a cancel or a takeover got to some first: read what they left
        state = done.state = _rebuild(conn, run_id, workflow_of, inflight(), cache)
        if state is None:
            return done
        version = state.version
        done.run = state.run
        for o in outcomes:
            view = state.run.step(o.step_id)
            if view.status == o.status and view.finished_at == o.at:
                done.changed.append((o.step_id, _finished_values(o)))
            else:
                done.dropped.append(o.step_id)
    if state.status in FINISHED_RUN:
        return _signal(conn, done, run_id, version)
    wf = state.wf
    while True:
        ready = state.readiness(free)
        for step_id in ready.skip:
            _close(conn, done, run_id, step_id, StepStatus.SKIPPED, now)
        for step_id, error in ready.fail:
            _close(conn, done, run_id, step_id, StepStatus.FAILED, now, error)
        if not (ready.skip or ready.fail):
            break
    # As many as there are free workers: a step claimed is run at once, and the pass that
    # records one that ends claims the next (a step of a wide run costs no claim of its own).
    start = ready.start if grant is None else grant(wf.name, ready.start)  # step_limits.py
    # A run its workflow's share holds back gets its pass from the share as one of its steps
    # ends: a worker freed elsewhere would be held back again (two such runs woke each
    # other in a loop of passes).
    done.short = state.short and len(start) == len(ready.start)
    _claim(conn, done, run_id, [wf.step(s) for s in start], now, new_thread_id, ownership)
    if done.claimed and state.status == RunStatus.WAITING:
        _set_run(conn, done, run_id, now, status=RunStatus.RUNNING)
    if not (ready.start or done.short):  # a step that waits for a worker is to come
        _settle(conn, done, run_id, wf, ready.active, ready.only_waiting, now)
    return _signal(conn, done, run_id, version)


def _rebuild(
    conn: Connection, run_id: str, workflow_of: Callable[[RunView], Workflow],
    inflight: frozenset[str], cache: runs.ViewCache | None,
) -> RunState | None:  # fmt: skip
    """The run read again (its version read first, so the view is no older than it)."""
    version = runs.run_version(conn, run_id)
    run = None if version is None else runs.load_run(conn, run_id, cache)
    return None if run is None else RunState(workflow_of(run), run, version, inflight)


def _signal(conn: Connection, done: Pass, run_id: str, version: int) -> Pass:
    """Raise the run's version for other processes' passes, and check that nobody else
    raised it since `version` (the pass's state was read then): else what the pass
    decided, even to change nothing, may rest on an old view. One round trip either way."""
    if done.state is None:
        return done
    done.run = done.state.run
    if done.held is not None and (done.changed or done.bumps):
        after = done.held.bump(conn)  # the held step changes with it, in one statement
        expected = version + done.bumps + 1
    elif done.changed or done.bumps:
        after = runs.bump_run(conn, run_id)
        expected = version + done.bumps + 1
    else:
        after, expected = runs.run_version(conn, run_id), version
    if after != expected:
        raise StaleRun(run_id)
    done.state.version = after
    if done.lost:  # a claim went to someone else: what else did they do?
        done.state = None
    return done


def _claim(
    conn: Connection,
    done: Pass,
    run_id: str,
    steps: list[Step],
    now: datetime,
    new_thread_id: Callable[[str], str],
    ownership: dict[str, Any],
) -> None:
    """Mark `steps` running (pending -> running) in one round trip."""
    claims = {s.id: Claim(s, new_thread_id(s.id)) for s in steps}
    values = {s.id: claim_values(s, claims[s.id].thread_id, now, ownership) for s in steps}
    if done.held is not None:  # as if won; if one was not, the pass is made again
        done.held.add(values, expect=StepStatus.PENDING)
        won = len(steps)
    else:
        won = runs.set_steps(conn, run_id, values, expect=StepStatus.PENDING)
    if won < len(steps):  # another replica or a cancel took some: keep ours
        done.lost = True
        ours = runs.steps_with_threads(conn, run_id, [c.thread_id for c in claims.values()])
        claims = {k: c for k, c in claims.items() if k in ours}
    for step_id, started in claims.items():
        done.claimed.append(started)
        v = values[step_id]
        done.set_step(step_id, status=v["status"], started_at=now, finished_at=None,
                      attempts=v["attempts"])  # fmt: skip


def claim_values(
    step: Step, thread_id: str, now: datetime, ownership: dict[str, Any]
) -> dict[str, Any]:
    """What a step's row gets when it is claimed pending -> running (see `runs.set_step`)."""
    return {"status": StepStatus.RUNNING, "thread_id": thread_id, "started_at": now,
            "finished_at": None, "updated_at": now, "attempts": 0 if step.is_gate else 1,
            **ownership}  # fmt: skip


def _finished_values(o: Outcome) -> dict[str, Any]:
    return {"status": o.status, "error": o.error, "outputs": o.outputs, "finished_at": o.at}


def _close(
    conn: Connection,
    done: Pass,
    run_id: str,
    step_id: str,
    status: StepStatus,
    now: datetime,
    error: str | None = None,
) -> None:
    """A pending step that will not run: skipped, or failed because its `if` could not be read.

    If the step is no longer pending, the pass's state is wrong about it (a change that
    did not raise the run's version): read again. Going on would decide the same step
    again and again, in a loop that never commits and holds the run's lock."""
    if done.held is not None:
        done.held.flush(conn)
    if not runs.set_step(conn, run_id, step_id, expect=[StepStatus.PENDING], status=status,
                         error=error, finished_at=now, updated_at=now, signal=False):  # fmt: skip
        raise StaleRun(run_id)
    done.set_step(step_id, status=status, error=error, finished_at=now)


def _set_run(conn: Connection, done: Pass, run_id: str, now: datetime, **values: Any) -> bool:
    if done.held is not None:  # step rows before the run row, as every writer does
        done.held.flush(conn)
    if not runs.set_run(conn, run_id, expect=[RunStatus.RUNNING, RunStatus.WAITING],
                        updated_at=now, **values):  # fmt: skip
        return False
    assert done.state is not None
    done.state.set_fields(**{k: v for k, v in values.items() if k in ("status", "error")})
    done.bumps += 1
    return True


def _settle(
    conn: Connection,
    done: Pass,
    run_id: str,
    wf: Workflow,
    active: bool,
    only_waiting: bool,
    now: datetime,
) -> None:
    """Nothing can start: the run waits (for its steps or a person), or it is over."""
    assert done.state is not None
    if active:
        status = RunStatus.WAITING if only_waiting else RunStatus.RUNNING
        if done.state.status != status:
            _set_run(conn, done, run_id, now, status=status)
        return
    status, error = run_outcome(wf, done.state.run)
    if _set_run(conn, done, run_id, now, status=status, error=error, finished_at=now):
        runs.audit(conn, runs.SYSTEM, f"run.{status}", now=now, run_id=run_id)
        done.finished = True
