"""A step is claimed when a worker is free for it, by the pass that frees the worker.

A pass claimed as many ready steps as there were free workers and queued the rest on
the pool, where each worker claimed its step in a transaction of its own: a step of a
wide run cost two transactions (its claim, and a share of the pass that recorded it).
Now a step that finds no free worker stays pending and ready; the pass that records a
step's end claims the next in the same transaction, and a chain's next step runs on the
worker whose pass claimed it (issue 16: cost per step).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import sqlalchemy as sa

from tests.orchestrators import running
from tests.polling import until
from tests.sample_workflows import blocking_shell


def _fanout(n: int) -> str:
    steps = "".join(f"  - id: s{i}\n    python: engine_tasks:ok\n" for i in range(n))
    return f"name: wide\nsteps:\n{steps}"


def _chain(n: int) -> str:
    steps = "".join(
        f"  - id: c{i}\n    python: engine_tasks:thread_name\n"
        + (f"    needs: [c{i - 1}]\n" if i else "")
        for i in range(n)
    )
    return f"name: chain\nsteps:\n{steps}"


@contextmanager
def counted_writes(engine: sa.Engine) -> Iterator[list[str]]:
    """Every write transaction (a statement that commits itself counts as one)."""
    writes: list[str] = []

    def begin(conn: sa.Connection) -> None:
        if conn.get_execution_options().get("opsloop_write"):
            writes.append("transaction")

    def execute(conn: sa.Connection, *_args: object) -> None:
        options = conn.get_execution_options()
        if options.get("opsloop_write") and options.get("isolation_level") == "AUTOCOMMIT":
            writes.append("statement")

    sa.event.listen(engine, "begin", begin)
    sa.event.listen(engine, "before_cursor_execute", execute)
    try:
        yield writes
    finally:
        sa.event.remove(engine, "begin", begin)
        sa.event.remove(engine, "before_cursor_execute", execute)


def test_a_wide_runs_step_is_claimed_with_the_end_of_the_one_before(engine: sa.Engine) -> None:
    """One worker, six steps: the run's insert with its first pass (claims s0; starting.py),
    then one pass per step that ends (records it, claims the next), and one write
    transaction as the run ends. There were six more: a claim of its own for each step
    after the first, and the first pass apart from the insert."""
    with running(engine, _fanout(6), max_workers=1) as orch, counted_writes(engine) as writes:
        run_id = orch.start_run("wide", {}, started_by="U0OPS")
        assert orch.wait(run_id, 30).status == "succeeded"
        assert len(writes) <= 2 + 6, writes


def test_a_chains_next_step_runs_on_the_worker_that_claimed_it(engine: sa.Engine) -> None:
    with running(engine, _chain(5), max_workers=4) as orch:
        run = orch.wait(orch.start_run("chain", {}, started_by="U0OPS"), 30)
        assert run.status == "succeeded"
        threads = {(s.outputs or {}).get("thread") for s in run.steps}
        assert len(threads) == 1, threads  # no hand-off from one worker to another


def test_a_run_waiting_for_a_worker_gets_one_when_another_runs_steps_end(
    engine: sa.Engine, tmp_path: Path
) -> None:
    """The first run takes the only worker and has more ready steps; the second run's
    step waits, pending, and starts once the first run has none left to start."""
    block = blocking_shell(tmp_path / "a.started", tmp_path / "a.go")
    first = "name: first\nsteps:\n" + "".join(
        f"  - id: a{i}\n    shell: {block}\n" for i in range(3)
    )
    second = 'name: second\nsteps:\n  - id: b\n    shell: ["true"]\n'
    with running(engine, first, second, max_workers=1) as orch:
        try:
            a = orch.start_run("first", {}, started_by="U0OPS")
            until(lambda: (tmp_path / "a.started").exists(), what="a step of the first run")
            b = orch.start_run("second", {}, started_by="U0OPS")
            assert orch.view(b).step("b").status == "pending"
            assert (b, "b") not in orch.running_steps()  # not handed out: no worker is free
        finally:
            (tmp_path / "a.go").touch()  # close() waits for the steps that run
        assert orch.wait(a, 30).status == "succeeded"
        assert orch.wait(b, 30).status == "succeeded"
