"""What a pass may do (`Readiness`, computed by runstate.py), and how a run ends. Pure."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from orchestrator.protocol import RunView
from orchestrator.workflow.definitions import Workflow
from orchestrator.workflow.expressions import build_context, step_outcome
from storage.statuses import RunStatus, StepStatus


@dataclass(frozen=True)
class Readiness:
    start: tuple[str, ...]  # pending steps whose needs finished and whose condition holds
    skip: tuple[str, ...]  # pending steps whose needs finished and whose condition fails
    active: bool  # something is running or waiting
    only_waiting: bool  # ...and all of it waits for a person
    # pending steps whose condition could not be evaluated, with the reason: they fail
    fail: tuple[tuple[str, str], ...] = ()


def _results(run: RunView) -> dict[str, dict[str, Any]]:
    return {s.step_id: {"status": s.status, "outputs": s.outputs or {}} for s in run.steps}


def run_outcome(workflow: Workflow, run: RunView) -> tuple[RunStatus, str | None]:
    """Succeeded unless a step failed without continue_on_error."""
    for view in run.steps:
        step = workflow.step(view.step_id)
        if view.status == StepStatus.FAILED and not step.continue_on_error:
            return RunStatus.FAILED, f"step {view.step_id} failed: {view.error}"
        if view.status == StepStatus.CANCELLED:
            return RunStatus.CANCELLED, f"step {view.step_id} was cancelled"
    return RunStatus.SUCCEEDED, None


def condition_context(workflow: Workflow, run: RunView, step_id: str) -> dict[str, Any]:
    """What a condition of `step_id` reads: the same context as its `if`."""
    return build_context(workflow, step_id, run.params, _results(run))


def template_context(workflow: Workflow, run: RunView) -> dict[str, Any]:
    """params and every step's status, outcome and outputs, for templates: `outcome` as
    conditions read it (a failed step with continue_on_error counts as succeeded)."""
    lenient = {step.id for step in workflow.steps if step.continue_on_error}
    steps = {}
    for s in run.steps:
        outcome = step_outcome(s.status, s.step_id in lenient)
        steps[s.step_id] = {"status": s.status, "outcome": outcome,
                            "outputs": dict(s.outputs or {})}  # fmt: skip
    return {"params": dict(run.params), "steps": steps}
