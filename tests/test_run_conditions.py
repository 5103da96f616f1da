"""Conditions evaluated while a run runs: `if` that fails to evaluate, `auto_approve_if`."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import sqlalchemy as sa

from orchestrator import interactions
from orchestrator.engine import Orchestrator
from orchestrator.workflow.loader import parse_workflow
from storage.engine import read_transaction

BAD_IF = """
name: bad-if
params:
  word: {type: string, default: x}
steps:
  - id: build
    python: engine_tasks:ok
  - id: compare
    needs: [build]
    if: params.word > 1
    python: engine_tasks:ok
  - id: after
    needs: [compare]
    python: engine_tasks:ok
  - id: on_failure
    needs: [compare]
    if: failure()
    python: engine_tasks:ok
  - id: cleanup
    needs: [after]
    if: always()
    python: engine_tasks:ok
"""

AUTO = """
name: auto
params:
  env: {type: choice, choices: [dev, prod], default: dev}
steps:
  - id: check
    python: engine_tasks:confidence
  - id: lint
    python: engine_tasks:boom
    continue_on_error: true
  - id: gate
    needs: [check, lint]
    auto_approve_if: success() and steps.check.outputs.confidence > 0.9 and params.env == 'dev'
    approval:
      message: ship?
  - id: ship
    needs: [gate]
    python: engine_tasks:ok
"""

AUTO_BROKEN = """
name: auto-broken
params:
  env: {type: string, default: dev}
steps:
  - id: gate
    auto_approve_if: params.env > 1
    approval:
      message: ship?
  - id: ship
    needs: [gate]
    python: engine_tasks:ok
"""

OUTCOME = """
name: outcome
steps:
  - id: lint
    python: engine_tasks:boom
    continue_on_error: true
  - id: report
    needs: [lint]
    shell: ["echo", "{{ steps.lint.status }}/{{ steps.lint.outcome }}"]
"""


@pytest.fixture
def orch(engine: sa.Engine) -> Iterator[Orchestrator]:
    workflows = [parse_workflow(text) for text in (BAD_IF, AUTO, AUTO_BROKEN, OUTCOME)]
    o = Orchestrator(engine, {w.name: w for w in workflows}, max_workers=4)
    o.start()
    yield o
    o.close()


def _steps(orch: Orchestrator, run_id: str) -> dict[str, tuple[str, str | None]]:
    return {s.step_id: (s.status, s.error) for s in orch.view(run_id).steps}


def test_an_if_that_cannot_be_evaluated_fails_its_step_and_the_run_goes_on(
    orch: Orchestrator,
) -> None:
    run_id = orch.start_run("bad-if", {}, started_by="URUN")
    run = orch.wait(run_id, timeout=30)
    assert run.status == "failed"
    steps = _steps(orch, run_id)
    status, error = steps.pop("compare")
    assert status == "failed"
    assert error is not None and error.startswith("could not evaluate `params.word > 1`: '>'")
    assert steps == {
        "build": ("succeeded", None), "after": ("skipped", None),
        "on_failure": ("succeeded", None), "cleanup": ("succeeded", None),
    }  # fmt: skip
    assert run.error == f"step compare failed: {error}"


def test_auto_approve_if_reads_what_an_if_of_the_gate_reads(orch: Orchestrator) -> None:
    # success() means the gate's needs succeeded (lint failed, but may: continue_on_error),
    # not "every step of the run", which includes the gate itself.
    run_id = orch.start_run("auto", {}, started_by="URUN")
    run = orch.wait(run_id, timeout=30)
    assert run.status == "succeeded"
    gate = next(s for s in run.steps if s.step_id == "gate")
    assert gate.outputs == {"approved": True, "auto": True}
    with read_transaction(orch.engine) as conn:
        assert interactions.pending_interactions(conn, run_id) == []

    run_id = orch.start_run("auto", {"env": "prod"}, started_by="URUN")
    assert orch.wait(run_id, timeout=30).status == "waiting"
    assert _steps(orch, run_id)["gate"] == ("waiting", None)


def test_an_auto_approve_if_that_cannot_be_evaluated_fails_the_gate(orch: Orchestrator) -> None:
    run_id = orch.start_run("auto-broken", {}, started_by="URUN")
    run = orch.wait(run_id, timeout=30)
    assert run.status == "failed"
    status, error = _steps(orch, run_id)["gate"]
    assert status == "failed"
    assert error is not None and error.startswith(
        "auto_approve_if failed: could not evaluate `params.env > 1`"
    )
    assert _steps(orch, run_id)["ship"] == ("skipped", None)


def test_a_template_reads_a_steps_outcome_as_a_condition_does(orch: Orchestrator) -> None:
    # lint failed, but continue_on_error makes it count as succeeded for what follows.
    run = orch.wait(orch.start_run("outcome", {}, started_by="URUN"), timeout=30)
    assert run.status == "succeeded"
    report = next(s for s in run.steps if s.step_id == "report")
    assert report.outputs is not None
    assert report.outputs["stdout"].strip() == "failed/succeeded"
