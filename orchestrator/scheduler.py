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
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from sqlalchemy.engine import Connection

from orchestrator import runs
from orchestrator.planning import readiness, run_outcome
from orchestrator.protocol import RunView
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
    queued: list[Step] = field(default_factory=list)  # ready, but no worker is free
    # Steps whose outcome was not recorded: cancelled, or taken over by another replica.
    dropped: list[str] = field(default_factory=list)
    finished: bool = False  # the run ended in this pass

    def set_step(self, step_id: str, **values: Any) -> None:
        """Record a committed change and apply it to `run`."""
        assert self.run is not None
        self.changed.append((step_id, values))
        self.run = self.run.with_step(step_id, **values)


def run_pass(
    conn: Connection,
    run_id: str,
    workflow_of: Callable[[RunView], Workflow],
    outcomes: Iterable[Outcome],
    *,
    inflight: frozenset[str],
    free: int,
    now: datetime,
    new_thread_id: Callable[[str], str],
    ownership: dict[str, Any],
    read: RunView | None = None,
    cache: runs.ViewCache | None = None,
    grant: Callable[[str, tuple[str, ...]], tuple[str, ...]] | None = None,
) -> Pass:
    """Advance `run_id` as far as it goes without running anything; see the module doc.

    `inflight` steps run in this process (they count as running whatever was read);
    at most `free` steps are claimed, the rest come back as `queued`. `read` is the run
    as read just before this transaction: on SQLite, reading it there keeps the pass
    short inside the file's single write lock. It stands in for a fresh read when every
    outcome was recorded; anything else that changed since only moved a step into or
    out of running or waiting, which no decision here takes for finished. `cache` is the
    run's step views from earlier loads (`runs.load_run`). `grant` keeps one workflow
    within its share of the workers (step_limits.py): steps it holds back stay pending.
    """
    done = Pass()
    outcomes = list(outcomes)
    # Fenced by owner: if another replica took a step over (this one stopped renewing its
    # lease), that replica's run of the step is the one that counts.
    recorded = runs.set_steps(
        conn, run_id, {o.step_id: {**_finished_values(o), "updated_at": o.at} for o in outcomes},
        expect=StepStatus.RUNNING, owner=ownership["owner"],
    )  # fmt: skip
    if read is not None and recorded == len(outcomes):
        done.run = read
        for o in outcomes:
            done.set_step(o.step_id, **_finished_values(o))
    else:
        done.run = runs.load_run(conn, run_id, cache)
        if done.run is None:
            return done
        views = {s.step_id: s for s in done.run.steps}
        for o in outcomes:  # recorded unless a cancel or a takeover got there first
            if views[o.step_id].status == o.status and views[o.step_id].finished_at == o.at:
                done.changed.append((o.step_id, _finished_values(o)))
            else:
                done.dropped.append(o.step_id)
    if done.run.status in FINISHED_RUN:
        return done
    wf = workflow_of(done.run)
    while True:
        ready = readiness(wf, done.run, inflight)
        for step_id in ready.skip:
            _close(conn, done, run_id, step_id, StepStatus.SKIPPED, now)
        for step_id, error in ready.fail:
            _close(conn, done, run_id, step_id, StepStatus.FAILED, now, error)
        if not (ready.skip or ready.fail):
            break
    start = ready.start if grant is None else grant(wf.name, ready.start)  # step_limits.py
    _claim(conn, done, run_id, [wf.step(s) for s in start[:free]], now, new_thread_id,
           ownership)  # fmt: skip
    done.queued = [wf.step(s) for s in start[free:]]
    if done.claimed and done.run.status == RunStatus.WAITING:
        _set_run(conn, done, run_id, now, status=RunStatus.RUNNING)
    if not ready.start:
        _settle(conn, done, run_id, wf, ready.active, ready.only_waiting, now)
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
    won = runs.set_steps(conn, run_id, values, expect=StepStatus.PENDING)
    if won < len(steps):  # another replica or a cancel took some: keep ours
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
    """A pending step that will not run: skipped, or failed because its `if` could not be read."""
    if runs.set_step(conn, run_id, step_id, expect=[StepStatus.PENDING], status=status,
                     error=error, finished_at=now, updated_at=now):  # fmt: skip
        done.set_step(step_id, status=status, error=error, finished_at=now)


def _set_run(conn: Connection, done: Pass, run_id: str, now: datetime, **values: Any) -> bool:
    if not runs.set_run(conn, run_id, expect=[RunStatus.RUNNING, RunStatus.WAITING],
                        updated_at=now, **values):  # fmt: skip
        return False
    assert done.run is not None
    done.run = replace(done.run, **{k: v for k, v in values.items() if k in ("status", "error")})
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
    assert done.run is not None
    if active:
        status = RunStatus.WAITING if only_waiting else RunStatus.RUNNING
        if done.run.status != status:
            _set_run(conn, done, run_id, now, status=status)
        return
    status, error = run_outcome(wf, done.run)
    if _set_run(conn, done, run_id, now, status=status, error=error, finished_at=now):
        runs.audit(conn, runs.SYSTEM, f"run.{status}", now=now, run_id=run_id)
        done.finished = True
