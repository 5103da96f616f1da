"""A python task that asks people mid-step (`ctx.ask`): the run waits, answers resume it."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from hypothesis import given, settings
from hypothesis import strategies as st

from orchestrator import gates, interactions
from orchestrator.clock import FakeClock
from orchestrator.engine import Orchestrator
from orchestrator.errors import NotAllowed, StepFailed
from orchestrator.queries import open_interactions
from orchestrator.step_limits import StepLimits
from orchestrator.workflow.loader import parse_workflow
from storage.engine import read_transaction
from tests.ask_tasks import BAD_ASKS
from tests.polling import until

ASKING = """
name: asking
steps:
  - id: restart
    python: engine_tasks:ask_twice
  - id: after
    needs: [restart]
    python: engine_tasks:ok
"""
SHORT_FORMS = """
name: short_forms
steps:
  - id: pick
    python: ask_tasks:pick_then_fill
"""
EXPIRING = """
name: expiring_ask
steps:
  - id: pick
    python: ask_tasks:pick_by_deadline
"""
BAD = "name: bad_asks\nsteps:\n" + "".join(
    f"  - id: {step}\n    python: ask_tasks:ask_as_told\n" for step in BAD_ASKS
)


@pytest.fixture
def orch(engine: sa.Engine) -> Iterator[Orchestrator]:
    workflows = {
        "asking": parse_workflow(ASKING), "short_forms": parse_workflow(SHORT_FORMS),
        "expiring_ask": parse_workflow(EXPIRING), "bad_asks": parse_workflow(BAD),
    }  # fmt: skip
    # With the default step timeout, as the CLI and serve run: each task runs in its own
    # thread, and ctx.ask must still pause it (the thread gets LangGraph's context).
    o = Orchestrator(engine, workflows, max_workers=4, clock=FakeClock(),
                     limits=StepLimits(default_timeout_s=3600))  # fmt: skip
    o.start()
    yield o
    o.close()


def _only_pending(orch: Orchestrator, run_id: str) -> dict:
    with read_transaction(orch.engine) as conn:
        (row,) = interactions.pending_interactions(conn, run_id)
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


def test_asks_take_the_short_forms_and_defaults_of_yaml_gates(orch: Orchestrator) -> None:
    run_id = orch.start_run("short_forms", {}, started_by="URUN")
    assert orch.wait(run_id, timeout=30).status == "waiting"
    decision = _only_pending(orch, run_id)
    assert decision["options"] == [{"value": "x", "label": "x"}, {"value": "y", "label": "y"}]
    orch.decide(decision["id"], "URUN", "x")  # a decision lets the requester answer, as a gate

    assert orch.wait(run_id, timeout=30).status == "waiting"
    form = _only_pending(orch, run_id)
    assert [(f["name"], f["type"], f["required"]) for f in form["fields"]] == [
        ("ticket", "text", True), ("risk", "choice", False),
    ]  # fmt: skip
    orch.decide(form["id"], "URUN", {"ticket": "OPS-1", "risk": "hi"})
    run = orch.wait(run_id, timeout=30)
    assert run.status == "succeeded"
    assert run.steps[0].outputs == {"picked": "x", "form": {"ticket": "OPS-1", "risk": "hi"}}


def test_a_deadline_given_to_ask_applies_its_action(orch: Orchestrator) -> None:
    run_id = orch.start_run("expiring_ask", {}, started_by="URUN")
    assert orch.wait(run_id, timeout=30).status == "waiting"
    asked = _only_pending(orch, run_id)
    assert (asked["deadline"] is not None, asked["on_deadline"]) == (True, "default:y")
    assert orch.clock.now() < asked["deadline"]
    orch.clock.advance(asked["deadline"] - orch.clock.now())  # type: ignore[attr-defined]
    # Read, not orch.wait(timeout=1): that raises when the resumed step takes over a
    # second to finish, as it can on a loaded machine, and `until` does not retry a raise.
    run = until(
        lambda: (r := orch.view(run_id)).status == "succeeded" and r,
        timeout=30, what="the deadline of ctx.ask",
    )  # fmt: skip
    assert run.steps[0].outputs == {"picked": "y", "by": "opsloop"}


def test_an_unknown_kind_or_a_bad_option_fails_the_step_with_the_reason(
    orch: Orchestrator,
) -> None:
    run = orch.wait(orch.start_run("bad_asks", {}, started_by="URUN"), timeout=30)
    assert run.status == "failed"
    errors = {s.step_id: (s.status, s.error) for s in run.steps}
    assert {step: status for step, (status, _) in errors.items()} == dict.fromkeys(
        BAD_ASKS, "failed"
    )
    expected = {
        "bogus": "ctx.ask('bogus', ...): unknown kind; use one of: approval, decision, input",
        "bad_deadline": "deadline must be a duration",
        "typo": "unknown key `optoins` in the decision gate (hint: did you mean `options`?)",
        "bad_default": "default `z` is not one of the options (hint: use one of: x, y)",
    }
    for step, text in expected.items():
        assert text in errors[step][1], errors[step][1]
    with read_transaction(orch.engine) as conn:
        assert interactions.pending_interactions(conn, run.id) == []


_json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)
_gate_keys = st.sampled_from(
    ["options", "fields", "deadline", "on_deadline", "default", "approvers", "deciders",
     "required", "allow_requester", "remind_every", "notify", "message", "bogus"]
)  # fmt: skip


@given(
    kind=st.sampled_from(["approval", "decision", "input", "bogus", ""]),
    options=st.dictionaries(_gate_keys, _json_values, max_size=5),
)
@settings(max_examples=300, deadline=None)
def test_fuzz_ask_options_open_a_question_or_explain(kind: str, options: dict) -> None:
    try:
        spec = gates.ask_spec(kind, "Go?", options)
    except StepFailed as exc:
        assert str(exc).startswith(f"ctx.ask({kind!r}, ...): ")
    else:
        assert spec["kind"] == kind and spec["prompt"] == "Go?"
        assert spec["required_approvals"] >= 1 and isinstance(spec["allow_requester"], bool)


def test_ask_options_keep_emoji_and_check_editable_params_against_the_workflow() -> None:
    spec = gates.ask_spec("decision", "Go?", {"options": ["🚀 ship", "hold"],
                                               "default": "🚀 ship", "deadline": "1h"})  # fmt: skip
    assert spec["on_deadline"] == "default:🚀 ship"
    assert spec["on_deadline"].encode("utf-8")  # no lone surrogates: a database takes it
    assert [o["value"] for o in spec["options"]] == ["🚀 ship", "hold"]
    ok = gates.ask_spec("approval", "Go?", {"editable_params": ["replicas"]}, ["replicas"])
    assert ok["editable_params"] == ["replicas"]
    with pytest.raises(StepFailed, match="nosuch, which the workflow does not declare"):
        gates.ask_spec("approval", "Go?", {"editable_params": ["nosuch"]}, ["replicas"])


HELD_ASK = """
name: held-ask
params:
  effects: {type: string, required: true}
  release: {type: string, required: true}
steps:
  - id: task
    python: ask_tasks:ask_then_hold
"""
# A process that starts the run, answers the question as UBOSS and lets the task run on.
RESUMER = """
import sys, time
sys.path.insert(0, sys.argv[3])
from orchestrator.engine import Orchestrator
from orchestrator.workflow.loader import parse_workflow
from orchestrator.queries import open_interactions
from orchestrator.step_limits import StepLimits
from storage.engine import create_engine
orch = Orchestrator(create_engine(sys.argv[1]), {"held-ask": parse_workflow(sys.argv[2])})
orch.start(recover=False)
run_id = orch.start_run("held-ask", {"effects": sys.argv[4], "release": sys.argv[5]},
                        started_by="URUN")
orch.wait(run_id, 30)
orch.decide(open_interactions(orch.engine, run_id)[0].id, "UBOSS", "approve")
time.sleep(120)  # killed by the test long before
"""


def test_a_task_killed_after_its_answer_is_not_rerun_without_a_person(
    engine: sa.Engine, db_url: str, tmp_path: Path
) -> None:
    effects, release = tmp_path / "effects", tmp_path / "release"
    worker = subprocess.Popen([
        sys.executable, "-c", RESUMER, db_url, HELD_ASK, str(Path(__file__).parent),
        str(effects), str(release),
    ])  # fmt: skip
    try:
        until(lambda: effects.exists() and "task/after" in effects.read_text(), timeout=60)
    finally:
        worker.kill()  # SIGKILL while the code after the question runs
        worker.wait()
    o = Orchestrator(engine, {"held-ask": parse_workflow(HELD_ASK)}, max_workers=2)
    o.start()  # recovery
    try:
        run_id = o.view(runs_ids(engine)[0]).id
        question = until(lambda: [i for i in open_interactions(o.engine, run_id)
                                  if i.kind == "decision"], timeout=20)  # fmt: skip
        assert "not marked idempotent" in question[0].prompt
        assert effects.read_text().count("task/after") == 1  # not run again by itself
    finally:
        release.touch()
        o.close()


def runs_ids(engine: sa.Engine) -> list[str]:
    with engine.connect() as conn:
        return [r[0] for r in conn.execute(sa.text("SELECT id FROM workflow_run"))]
