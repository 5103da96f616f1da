"""`opsloop plan WORKFLOW key=value ...`: which steps a run with these params would run,
skip or wait at, decided without starting anything. Pure.

It follows the path where every step that runs succeeds. A condition that reads only
params (and status functions, on that path) is evaluated now; one that reads what a
step produced is decided when that step finishes, and so is every step after it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from orchestrator.errors import ExpressionError
from orchestrator.workflow.definitions import Workflow
from orchestrator.workflow.expressions import compile_condition, should_run

Verdict = Literal["runs", "waits", "skipped", "later"]


@dataclass(frozen=True)
class Predicted:
    step_id: str
    verdict: Verdict  # later: decided when what it reads is known
    why: str = ""


def predict(workflow: Workflow, params: Mapping[str, Any]) -> list[Predicted]:
    """Each step's fate in file order, for `params` already checked (coerce_params)."""
    verdicts: dict[str, Predicted] = {}
    results: dict[str, dict[str, Any]] = {}
    for level in workflow.levels():
        for step_id in level:
            verdicts[step_id] = _one(workflow, step_id, params, results, verdicts)
            status = "skipped" if verdicts[step_id].verdict == "skipped" else "succeeded"
            results[step_id] = {"status": status, "outputs": {}}
    return [verdicts[step.id] for step in workflow.steps]


def _one(
    workflow: Workflow, step_id: str, params: Mapping[str, Any],
    results: Mapping[str, Mapping[str, Any]], verdicts: Mapping[str, Predicted],
) -> Predicted:  # fmt: skip
    step = workflow.step(step_id)
    later = [n for n in step.needs if verdicts[n].verdict == "later"]
    if later:
        return Predicted(step_id, "later", f"after {', '.join(later)}, decided at run time")
    condition = compile_condition(step.condition) if step.condition else None
    reads = sorted({ref for kind, ref in condition.references() if kind == "steps"}) if (
        condition) else []  # fmt: skip
    if reads:
        return Predicted(step_id, "later", f"`if: {step.condition}` reads {', '.join(reads)}: "
                                           "decided when it finishes")  # fmt: skip
    try:
        go = should_run(workflow, step_id, params, results)
    except ExpressionError as exc:
        return Predicted(step_id, "skipped", f"its condition fails: {exc}")
    if not go:
        skipped = [n for n in step.needs if verdicts[n].verdict == "skipped"]
        if condition is not None and condition.uses_status:
            why = f"`if: {step.condition}` is false when every step before it succeeds"
        elif skipped and (condition is None or condition.evaluate({"params": dict(params)})):
            why = f"{', '.join(skipped)} is skipped"
        else:
            why = f"`if: {step.condition}` is false with these params"
        return Predicted(step_id, "skipped", why)
    return Predicted(step_id, "waits" if step.is_gate else "runs")
