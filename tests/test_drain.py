"""A graceful stop of the orchestrator (`drain`), as `serve` does on SIGTERM.

Within the grace period a running step ends and is recorded, and nothing new starts;
after it, shell steps are killed and their leases released, so another replica takes
the step over at once instead of after the lease (30 s) runs out.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import sqlalchemy as sa

from orchestrator import leases
from orchestrator.engine import Orchestrator
from orchestrator.runs import STEPS
from tests.orchestrators import running
from tests.polling import until
from tests.sample_workflows import blocking_shell


def blocking(started: Path, release: Path) -> str:
    return f"""
name: blocking
steps:
  - id: first
    shell: {blocking_shell(started, release)}
  - id: second
    needs: first
    shell: ["true"]
"""


@contextmanager
def first_step_running(
    engine: sa.Engine, tmp_path: Path
) -> Iterator[tuple[Orchestrator, str, Path]]:
    """A run of `blocking` whose first step has started: (orchestrator, run id, the file
    that lets the step end)."""
    started, release = tmp_path / "started", tmp_path / "release"
    with running(engine, blocking(started, release)) as orch:
        run_id = orch.start_run("blocking", {}, started_by="test")
        until(started.exists, what="the step to start")
        yield orch, run_id, release


def statuses(engine: sa.Engine, run_id: str) -> dict[str, str]:
    with engine.connect() as conn:
        rows = conn.execute(sa.select(STEPS.c.step_id, STEPS.c.status)
                            .where(STEPS.c.run_id == run_id))  # fmt: skip
        return dict(rows.all())


def test_a_step_that_ends_in_the_grace_period_is_recorded_and_nothing_new_starts(
    engine: sa.Engine, tmp_path: Path
) -> None:
    with first_step_running(engine, tmp_path) as (orch, run_id, release):
        release.touch()
        assert orch.drain(20) is True
        assert statuses(engine, run_id) == {"first": "succeeded", "second": "pending"}


def test_after_the_grace_period_shell_steps_are_killed_and_taken_over_at_once(
    engine: sa.Engine, tmp_path: Path
) -> None:
    with first_step_running(engine, tmp_path) as (orch, run_id, _):
        assert orch.drain(0.2) is False
        # killed, but not recorded as failed: how it ended is recovery's business
        assert statuses(engine, run_id) == {"first": "running", "second": "pending"}
        now = orch.clock.now()
    # the lease ended now: another replica takes the step over without waiting
    assert leases.claim_orphan(engine, "other/1/x", run_id, "first", now)


HELD = """
name: held
params:
  key: {type: string}
steps:
  - id: slow
    python: engine_tasks:held
    idempotent: true
"""


def test_a_python_step_still_running_keeps_its_lease_and_close_does_not_wait(
    engine: sa.Engine,
) -> None:
    """A python step cannot be killed: releasing its lease let another replica run it a
    second time while it still ran here (and close() waited for it without limit)."""
    import threading
    import uuid

    import engine_tasks

    key = uuid.uuid4().hex
    gate = engine_tasks.GATES.setdefault(key, threading.Event())
    try:
        with running(engine, HELD) as orch:
            run_id = orch.start_run("held", {"key": key}, started_by="test")
            until(lambda: engine_tasks.CALLS.get(key) == 1, what="the task to start")
            assert orch.drain(0.2) is False
            now = orch.clock.now()
            assert not leases.claim_orphan(engine, "other/1/x", run_id, "slow", now)
        assert not gate.is_set()  # close() returned while the task still runs
        assert statuses(engine, run_id) == {"slow": "running"}
    finally:
        gate.set()
