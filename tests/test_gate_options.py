"""Gate options: where the question is posted, escalation, params an approver may change."""

from __future__ import annotations

import pytest

from orchestrator.errors import DefinitionError
from orchestrator.workflow.gate_definitions import ApprovalGate, Escalation
from orchestrator.workflow.loader import parse_workflow

BASE = """
name: g
params:
  replicas: {type: int, default: 2}
steps:
  - id: ok
    approval:
      message: "go?"
"""


def gate(extra: str) -> ApprovalGate:
    workflow = parse_workflow(BASE + "".join(f"      {line}\n" for line in extra.splitlines()))
    action = workflow.step("ok").action
    assert isinstance(action, ApprovalGate)
    return action


def test_defaults_post_in_the_thread_without_escalation() -> None:
    action = gate("")
    assert (action.notify, action.escalate, action.editable_params) == ("thread", None, ())


def test_options_are_read() -> None:
    action = gate("notify: dm\nescalate: {after: 30m, groups: [S0ONCALL]}\n"
                  "editable_params: [replicas]")  # fmt: skip
    assert action.notify == "dm"
    assert action.escalate == Escalation(after_s=1800.0, groups=("S0ONCALL",))
    assert action.editable_params == ("replicas",)


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ("notify: email", "notify"),
        ("escalate: {after: soon}", "after"),
        ("escalate: {after: 1h, groups: [oncall]}", "S012AB3CD"),
        ("editable_params: [colour]", "unknown param `colour`"),
    ],
)
def test_bad_options_name_the_line_and_the_fix(extra: str, message: str) -> None:
    with pytest.raises(DefinitionError) as err:
        gate(extra)
    assert message in str(err.value) and "<string>:" in str(err.value)
