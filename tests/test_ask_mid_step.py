"""A python task that asks people mid-step (`ctx.ask`): the run waits, answers resume it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import sqlalchemy as sa

from orchestrator import runs
from orchestrator.engine import Orchestrator
from orchestrator.errors import NotAllowed
from orchestrator.loader import parse_workflow
from storage.engine import read_transaction

ASKING = """
name: asking
steps:
  - id: restart
    python: engine_tasks:ask_twice
  - id: after
    needs: [restart]
    python: engine_tasks:ok
"""


@pytest.fixture
def orch(engine: sa.Engine) -> Iterator[Orchestrator]:
    o = Orchestrator(engine, {"asking": parse_workflow(ASKING)}, max_workers=4)
    o.start()
    yield o
    o.close()


def _only_pending(orch: Orchestrator, run_id: str) -> dict:
    with read_transaction(orch.engine) as conn:
        (row,) = runs.pending_interactions(conn, run_id)
    return dict(row)


def _said(resolution: dict) -> tuple:
    return resolution["status"], resolution["value"], resolution["by"]


def test_a_task_that_asks_waits_for_each_answer_and_gets_it(orch: Orchestrator) -> None:
    run_id = orch.start_run("asking", {}, started_by="URUN")
    run = orch.wait(run_id, timeout=30)
    assert run.status == "waiting"
    assert {s.step_id: s.status for s in run.steps} == {"restart": "waiting", "after": "pending"}
    first = _only_pending(orch, run_id)
    assert (first["kind"], first["prompt"], first["step_id"]) == (
        "approval", "restart the database?", "restart",
    )  # fmt: skip
    with pytest.raises(NotAllowed, match="started this run"):
        orch.decide(first["id"], "URUN", "approve")

    orch.decide(first["id"], "UOPS", "approve")
    assert orch.wait(run_id, timeout=30).status == "waiting"
    second = _only_pending(orch, run_id)
    assert second["id"] != first["id"]
    assert (second["kind"], second["prompt"]) == ("decision", "which replica first?")
    assert [o["value"] for o in second["options"]] == ["east", "west"]

    orch.decide(second["id"], "UOPS", "west")
    run = orch.wait(run_id, timeout=30)
    assert run.status == "succeeded"
    outputs = next(s for s in run.steps if s.step_id == "restart").outputs
    assert _said(outputs["approval"]) == ("approved", "approve", "UOPS")
    assert _said(outputs["choice"]) == ("decided", "west", "UOPS")
    assert next(s for s in run.steps if s.step_id == "after").status == "succeeded"
