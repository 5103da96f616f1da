"""A pass starts from the run's state as this process left it (orchestrator/runstate.py):
what another process changes in the run is still seen."""

from __future__ import annotations

import threading
import uuid

import engine_tasks
import sqlalchemy as sa

from orchestrator import interactions
from orchestrator.engine import Orchestrator
from orchestrator.workflow.loader import parse_workflow
from storage.engine import read_transaction
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
