"""A pass starts from the run's state as this process left it (orchestrator/runstate.py):
what another process changes in the run is still seen."""

from __future__ import annotations

import threading
import uuid
from datetime import UTC, datetime

import engine_tasks
import sqlalchemy as sa

from orchestrator import interactions, leases, runs, scheduler
from orchestrator.engine import Orchestrator
from orchestrator.runstate import RunState
from orchestrator.workflow.loader import parse_workflow
from storage.engine import read_transaction, write_transaction
from storage.statuses import StepStatus
from tests.polling import until

SPLIT = """
name: split
params:
  key: {type: string, required: true}
steps:
  - id: slow
    python: engine_tasks:held
  - id: gate
    approval:
      message: "Go on?"
      approvers: {users: [UAAA]}
  - id: after
    needs: [gate]
    shell: ["true"]
"""


def _pending_id(engine: sa.Engine, run_id: str) -> str:
    with read_transaction(engine) as conn:
        (row,) = interactions.pending_interactions(conn, run_id)
    return row["id"]


def test_a_step_another_process_finished_is_seen_by_this_process_s_next_pass(
    engine: sa.Engine,
) -> None:
    """Here: `slow` runs, the gate waits. Elsewhere: the gate is approved and `after` runs
    and is recorded there. When `slow` ends here, this process's pass must see that; from
    its own last view (gate waiting) it would park the run as waiting for a person, for good.
    """
    key = uuid.uuid4().hex
    hold = engine_tasks.GATES[key] = threading.Event()
    here = Orchestrator(engine, {"split": parse_workflow(SPLIT)})
    there = Orchestrator(engine, {"split": parse_workflow(SPLIT)})
    here.start(recover=False)
    there.start(recover=False)
    try:
        run_id = here.start_run("split", {"key": key}, started_by="UOPS")
        until(lambda: engine_tasks.CALLS.get(key) == 1, what="slow to start here")
        until(lambda: here.view(run_id).step("gate").status == "waiting", what="the gate")
        there.decide(_pending_id(engine, run_id), "UAAA", "approve")
        until(lambda: there.view(run_id).step("after").status == "succeeded", what="after")
        hold.set()
        run = here.wait(run_id, 30)
        assert run.status == "succeeded", run
        assert [s.status for s in run.steps] == ["succeeded"] * 3
    finally:
        hold.set()
        there.close()
        here.close()


GUARDED = """
name: guarded
params:
  go: {type: string, default: "no"}
steps:
  - id: first
    python: engine_tasks:ok
  - id: then
    needs: [first]
    if: params.go == 'yes'
    python: engine_tasks:ok
"""


def test_a_pass_whose_state_missed_a_change_reads_again_instead_of_looping(
    engine: sa.Engine,
) -> None:
    """A pass decides to skip `then`, which its kept state has pending, but the row
    changed without raising the run's version (as a worker's claim does). Its close
    loses: the pass must roll back and read again (StaleRun). Before, it decided the
    same skip forever, inside its transaction, holding the run's lock."""
    wf = parse_workflow(GUARDED)
    now = datetime.now(UTC)
    own = leases.ownership("test-replica", now)
    run_id = runs.new_run_id()
    with write_transaction(engine) as conn:
        runs.insert_started(conn, wf, run_id, {"go": "no"}, "UOPS", "cli", None, None, now)

    def one_pass(state: RunState | None, outcomes: list[scheduler.Outcome]) -> scheduler.Pass:
        with write_transaction(engine) as conn:
            return scheduler.run_pass(
                conn, run_id, lambda _run: wf, outcomes, state=state,
                inflight=frozenset, free=4, now=now, ownership=own,
                new_thread_id=lambda step_id: f"{run_id}/{step_id}/t",
            )  # fmt: skip

    first = one_pass(None, [])
    assert [c.step.id for c in first.claimed] == ["first"]
    assert first.state is not None
    with write_transaction(engine) as conn:  # changed behind the kept state, no version raised
        assert runs.set_step(conn, run_id, "then", expect=["pending"], status="running",
                             signal=False)  # fmt: skip
    outcome = scheduler.Outcome("first", StepStatus.SUCCEEDED, now, None, {})
    raised: list[BaseException] = []

    def second() -> None:
        try:
            one_pass(first.state, [outcome])
        except BaseException as exc:  # what the pass ended with
            raised.append(exc)

    worker = threading.Thread(target=second, daemon=True)
    worker.start()
    worker.join(timeout=30)
    assert not worker.is_alive(), "the pass loops on a close it keeps losing"
    assert [type(e) for e in raised] == [scheduler.StaleRun]
    again = one_pass(None, [outcome])  # from a fresh read: `then` is running, nothing to do
    assert again.run is not None and again.run.step("first").status == "succeeded"
    assert again.run.step("then").status == "running"
