"""An interaction row read into its typed view: the gate's own options and fields come
back, and approvals are counted once, on the view."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from orchestrator import gates
from orchestrator.interactions import interaction_view
from orchestrator.protocol import Response
from orchestrator.workflow.gate_definitions import DecisionGate, InputGate
from orchestrator.workflow.loader import parse_workflow

WORKFLOW = parse_workflow("""
name: views
steps:
  - id: pick
    decision:
      message: "Which way?"
      options: [{value: canary, label: Canary first}, all]
  - id: form
    input:
      message: "Details?"
      fields:
        ticket: {type: text, required: true}
        risk: {type: choice, choices: [low, high], label: Risk level}
  - id: ok
    approval:
      message: "Go?"
      approvers: {users: [U0A, U0B, U0C]}
      required: 3
""")
T0 = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)


def row(step_id: str, **values: Any) -> dict[str, Any]:
    """The interaction row a gate step opens (its columns from `gates.gate_spec`)."""
    spec = gates.gate_spec(WORKFLOW.step(step_id), lambda text: text)
    columns = {k: v for k, v in spec.items() if not k.endswith("_s")}
    return {
        "id": "i-1", "run_id": "r-1", "step_id": step_id, "purpose": "gate",
        "status": "pending", "options": None, "fields": None, "responses": [],
        "answer": None, "answered_by": None, "deadline": None, "answered_at": None,
        "escalate_to": None, **columns, **values,
    }  # fmt: skip


def test_a_decision_shows_the_gates_own_options():
    action = WORKFLOW.step("pick").action
    assert isinstance(action, DecisionGate)
    view = interaction_view(row("pick"))
    assert view.options == action.options
    assert view.option_label("canary") == "Canary first" and view.option_label("all") == "all"
    assert view.option_label("nope") is None


def test_an_input_gate_shows_its_own_fields():
    action = WORKFLOW.step("form").action
    assert isinstance(action, InputGate)
    view = interaction_view(row("form"))
    assert view.fields == action.fields
    assert [(f.name, f.label, f.required) for f in view.fields] == [
        ("ticket", "ticket", True), ("risk", "Risk level", False)]  # fmt: skip


def test_approvals_are_counted_on_the_view():
    state = row("ok")
    for n, user in enumerate(("U0A", "U0B")):
        outcome = gates.apply_answer(state, user, "yes", "fine", T0 + timedelta(minutes=n))
        state = {**state, "responses": outcome.responses, "status": outcome.status}
    view = interaction_view(state)
    assert (view.approvals, view.approvers, view.required) == (2, ("U0A", "U0B"), 3)
    assert view.last_response == Response("U0B", "approve", T0 + timedelta(minutes=1), "fine")
    rejected = gates.apply_answer(state, "U0C", "no", None, T0 + timedelta(minutes=5))
    closed = interaction_view({**state, "responses": rejected.responses})
    assert closed.approvals == 2 and closed.last_response.answer == "reject"


def test_a_deadline_answer_is_known_as_one():
    outcome = gates.deadline_outcome(row("ok"), T0)
    (answer,) = interaction_view({**row("ok"), "responses": outcome.responses}).responses
    assert answer.at_deadline and not answer.approves and answer.user == "opsloop"
    assert answer.at == T0 and answer.at.tzinfo is not None


def test_a_naive_or_missing_time_reads_safely():
    raw = [{"user": "U0A", "answer": "approve", "at": "2026-03-01T09:00:00"},
           {"user": "U0B", "answer": "approve", "at": "soon"}]  # fmt: skip
    first, second = interaction_view({**row("ok"), "responses": raw}).responses
    assert first.at == T0 and second.at is None
