"""Runs left pending for want of a worker get one once a worker is free (advancing.py's
`_want_workers`, scheduler.Pass.short): no wake-up lost, none made in a loop, and the
pool keeps its workers whatever a task raises."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import sqlalchemy as sa

from orchestrator.protocol import RunView, SilentFrontEnd
from orchestrator.step_limits import StepLimits
from tests.orchestrators import running
from tests.polling import until
from tests.sample_workflows import blocking_shell

HELLO = 'name: hello\nsteps:\n  - id: h\n    shell: ["true"]\n'


@contextmanager
def _transactions(engine: sa.Engine) -> Iterator[list[None]]:
    """Every transaction begun on `engine`, reads too (a pass is one)."""
    begun: list[None] = []

    def begin(_conn: sa.Connection) -> None:
        begun.append(None)

    sa.event.listen(engine, "begin", begin)
    try:
        yield begun
    finally:
        sa.event.remove(engine, "begin", begin)


class _HeldStart(SilentFrontEnd):
    """Holds `run_started` of the workflow `late` until `go`: the start's first pass has
    committed (its step left pending, no worker free) and is not settled yet."""

    def __init__(self) -> None:
        self.entered, self.go = threading.Event(), threading.Event()

    def run_started(self, run: RunView) -> None:
        if run.workflow == "late":
            self.entered.set()
            assert self.go.wait(60)


def test_a_worker_freed_while_a_run_starts_short_of_one_goes_to_it(
    engine: sa.Engine, tmp_path: Path
) -> None:
    """The only worker runs `first`'s step as `late` is started: its pass finds no worker
    and commits `b` pending. The worker frees before that start is settled, so the pass
    that freed it found no run waiting; `late` must still get the worker (it waited
    forever: no step of its own ends to give it a pass, and no sweep runs here)."""
    block = blocking_shell(tmp_path / "a.started", tmp_path / "a.go")
    first = f"name: first\nsteps:\n  - id: a\n    shell: {block}\n"
    late = 'name: late\nsteps:\n  - id: b\n    shell: ["true"]\n'
    front = _HeldStart()
    with running(engine, first, late, max_workers=1, front_end=front) as orch:
        starter = None
        try:
            a = orch.start_run("first", {}, started_by="U0OPS")
            until(lambda: (tmp_path / "a.started").exists(), what="first's step")
            starter = threading.Thread(
                target=orch.start_run, args=("late", {}),
                kwargs={"started_by": "U0OPS", "run_id": "late-run"},
            )  # fmt: skip
            starter.start()
            assert front.entered.wait(60)
            assert orch.view("late-run").step("b").status == "pending"
            (tmp_path / "a.go").touch()
            assert orch.wait(a, 60).status == "succeeded"
            with orch._advancer.run_lock(a):  # first's last pass, waking runs, is over
                pass
        finally:
            (tmp_path / "a.go").touch()
            front.go.set()
            if starter is not None:
                starter.join(60)
        assert orch.wait("late-run", 30).status == "succeeded"


def test_runs_held_back_by_their_share_are_not_woken_in_a_loop(
    engine: sa.Engine, tmp_path: Path
) -> None:
    """Two runs of one workflow past its share (3 of 4 workers) and one worker free: a
    pass of another workflow's run that leaves it free gave one of them a pass, which the
    share held back and which gave the other one a pass, and so on: passes (each a write
    transaction) without end while the share's steps ran. The share gives such runs their
    pass when one of its steps ends (step_limits.py)."""
    block = blocking_shell(tmp_path / "s.started", tmp_path / "s.go")
    hog = "name: hog\nsteps:\n" + "".join(f"  - id: s{i}\n    shell: {block}\n" for i in range(6))
    limits = StepLimits(workflow_workers=3)
    with running(engine, hog, HELLO, max_workers=4, limits=limits) as orch:
        try:
            first = orch.start_run("hog", {}, started_by="U0OPS")
            second = orch.start_run("hog", {}, started_by="U0OPS")
            until(
                lambda: (
                    len((tmp_path / "s.started").read_text().split()) == 3
                    if (tmp_path / "s.started").exists()
                    else False
                ),
                what="the share running",
            )
            with _transactions(orch.engine) as begun:
                hello = orch.start_run("hello", {}, started_by="U0OPS")
                assert orch.wait(hello, 30).status == "succeeded"
                # A loop makes hundreds of passes a second; there is nothing to pass over.
                with pytest.raises(AssertionError):
                    until(lambda: len(begun) > 30, timeout=2, what="a loop of passes")
        finally:
            (tmp_path / "s.go").touch()
        for run_id in (first, second):
            assert orch.wait(run_id, 60).status == "succeeded"


def test_a_step_that_raises_system_exit_leaves_the_pool_its_worker(
    engine: sa.Engine, tmp_path: Path
) -> None:
    """A python step's sys.exit() ended the only worker thread for good (the pool caught
    Exception only; ThreadPoolExecutor caught it): every later step waited forever."""
    log = tmp_path / "exits.log"
    exits = (
        "name: exits\nparams:\n  log: {type: string, required: true}\nsteps:\n"
        "  - id: x\n    python: engine_tasks:exits\n"
    )
    with running(engine, exits, HELLO, max_workers=1) as orch:
        orch.start_run("exits", {"log": str(log)}, started_by="U0OPS")
        until(log.exists, what="the step that exits")
        hello = orch.start_run("hello", {}, started_by="U0OPS")
        assert orch.wait(hello, 30).status == "succeeded"
