"""The orchestrator end to end on real databases: parallel branches, gates, races, deadlines."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from orchestrator.clock import FakeClock
from orchestrator.engine import Orchestrator
from orchestrator.errors import AlreadyAnswered, InvalidAnswer, NotAllowed
from orchestrator.workflow.gate_definitions import Approvers
from orchestrator.workflow.loader import parse_workflow
from storage.engine import create_engine
from tests.orchestrators import running
from tests.polling import process_alive, until
from tests.sample_workflows import EXPIRING

DEPLOY = """
name: deploy
params:
  service: {type: string, default: api}
steps:
  - id: build
    shell: ["true"]
  - id: test
    needs: [build]
    shell: ["true"]
  - id: package
    needs: [test]
    shell: ["echo", "package {{ params.service }}"]
  - id: gate
    approval:
      message: "Deploy {{ params.service }}?"
      approvers: {users: [UAAA, UBBB, UCCC]}
  - id: ship
    needs: [gate, package]
    shell: ["true"]
"""


@pytest.fixture
def orch(engine: sa.Engine) -> Iterator[Orchestrator]:
    workflows = {w.name: w for w in (parse_workflow(DEPLOY), parse_workflow(EXPIRING))}
    o = Orchestrator(engine, workflows, max_workers=8, clock=FakeClock())
    o.start()
    yield o
    o.close()


def _statuses(orch: Orchestrator, run_id: str) -> dict[str, str]:
    return {s.step_id: s.status for s in orch.view(run_id).steps}


def _pending_id(orch: Orchestrator, run_id: str) -> str:
    from orchestrator import interactions
    from storage.engine import read_transaction

    with read_transaction(orch.engine) as conn:
        (row,) = interactions.pending_interactions(conn, run_id)
    return row["id"]


def test_a_pending_gate_does_not_hold_back_other_branches(orch: Orchestrator) -> None:
    run_id = orch.start_run("deploy", {}, started_by="URUN")
    run = orch.wait(run_id, timeout=30)
    assert run.status == "waiting"
    assert _statuses(orch, run_id) == {
        "build": "succeeded", "test": "succeeded", "package": "succeeded",
        "gate": "waiting", "ship": "pending",
    }  # fmt: skip
    package = next(s for s in run.steps if s.step_id == "package")
    assert package.outputs["stdout"] == "package api\n"

    orch.decide(_pending_id(orch, run_id), "UAAA", "approve")
    run = orch.wait(run_id, timeout=30)
    assert run.status == "succeeded"
    assert _statuses(orch, run_id)["ship"] == "succeeded"


def test_a_rejection_fails_the_gate_and_skips_what_needs_it(orch: Orchestrator) -> None:
    run_id = orch.start_run("deploy", {}, started_by="URUN")
    orch.wait(run_id, timeout=30)
    orch.decide(_pending_id(orch, run_id), "UBBB", "reject", comment="not today")
    run = orch.wait(run_id, timeout=30)
    assert run.status == "failed"
    gate = next(s for s in run.steps if s.step_id == "gate")
    assert gate.error == "rejected by UBBB: not today"
    assert _statuses(orch, run_id)["ship"] == "skipped"


def test_outsiders_and_the_requester_cannot_approve(orch: Orchestrator) -> None:
    run_id = orch.start_run("deploy", {}, started_by="UAAA")
    orch.wait(run_id, timeout=30)
    iid = _pending_id(orch, run_id)
    with pytest.raises(NotAllowed, match="started this run"):
        orch.decide(iid, "UAAA", "approve")
    for spelled in ("uaaa", " UAAA", "UAAA\n"):  # the requester, spelled differently
        with pytest.raises(NotAllowed, match="started this run"):
            orch.decide(iid, spelled, "approve")
    for not_an_id in ("", "   ", "UA AA"):
        with pytest.raises(InvalidAnswer, match="is not a user id"):
            orch.decide(iid, not_an_id, "approve")
    with pytest.raises(NotAllowed, match="may not answer"):
        orch.decide(iid, "UZZZ", "approve")
    assert orch.view(run_id).status == "waiting"
    with orch.engine.connect() as conn:
        refusals = conn.execute(
            sa.text("SELECT count(*) FROM audit_log WHERE action = 'interaction.refused'")
        ).scalar()
    assert refusals == 5


def test_twenty_racing_answers_resume_the_run_once(orch: Orchestrator) -> None:
    run_id = orch.start_run("deploy", {}, started_by="URUN")
    orch.wait(run_id, timeout=30)
    iid = _pending_id(orch, run_id)
    barrier = threading.Barrier(20)
    won: list[str] = []
    lost: list[str | None] = []

    def answer(n: int) -> None:
        user = ("UAAA", "UBBB", "UCCC")[n % 3]
        barrier.wait(timeout=30)
        try:
            orch.decide(iid, user, "approve")
            won.append(user)
        except AlreadyAnswered as exc:
            lost.append(exc.answered_by)

    threads = [threading.Thread(target=answer, args=(n,)) for n in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert len(won) == 1 and len(lost) == 19
    assert set(lost) == {won[0]}
    assert orch.wait(run_id, timeout=30).status == "succeeded"
    with orch.engine.connect() as conn:
        answered = conn.execute(
            sa.text("SELECT count(*) FROM audit_log WHERE action = 'interaction.answered'")
        ).scalar()
    assert answered == 1


def test_a_deadline_applies_its_action_once(orch: Orchestrator) -> None:
    clock: FakeClock = orch.clock  # type: ignore[assignment]
    run_id = orch.start_run("expiring", {}, started_by="URUN")
    assert orch.wait(run_id, timeout=30).status == "waiting"
    clock.advance(0.999)  # time moves only when the test moves it: not due yet
    assert orch.wait(run_id, timeout=30).status == "waiting"
    clock.advance(0.001)
    # polled, not orch.wait(timeout=5): that raised while the run was busy for 5 s under load
    until(lambda: orch.view(run_id).status in ("failed", "succeeded"), timeout=60,
          what="the deadline to fire")  # fmt: skip
    assert _statuses(orch, run_id) == {"gate": "failed", "after": "skipped"}
    with pytest.raises(AlreadyAnswered, match="by opsloop"):
        orch.decide(_closed_id(orch, run_id), "UAAA", "approve")


def _closed_id(orch: Orchestrator, run_id: str) -> str:
    with orch.engine.connect() as conn:
        return conn.execute(
            sa.text("SELECT id FROM interaction WHERE run_id = :r"), {"r": run_id}
        ).scalar()


UNLOADABLE = """
name: unloadable
steps:
  - id: builtin
    python: time:sleep
  - id: missing
    python: no_such_module_here:run
  - id: broken
    python: broken_task_module:run
  - id: independent
    shell: ["true"]
  - id: after
    needs: [builtin]
    shell: ["true"]
"""


def test_a_task_that_cannot_be_called_fails_its_step_with_a_reason(engine: sa.Engine) -> None:
    with running(engine, UNLOADABLE, recover=True, max_workers=4) as o:
        run = o.wait(o.start_run("unloadable", {}, started_by="URUN"), timeout=30)
        steps = {s.step_id: s for s in run.steps}
        assert run.status == "failed"
        assert {k: s.status for k, s in steps.items()} == {
            "builtin": "failed", "missing": "failed", "broken": "failed",
            "independent": "succeeded", "after": "skipped",
        }  # fmt: skip
        assert "importing broken_task_module raised RuntimeError" in steps["broken"].error
        assert "no signature" in steps["builtin"].error and "wrap it" in steps["builtin"].error
        assert "cannot load task no_such_module_here:run" in steps["missing"].error


LONG = """
name: long
params:
  pidfile: {type: string, required: true}
steps:
  - id: work
    shell: ["sh", "-c", "echo $$ > {{ params.pidfile }}; exec sleep 60"]
"""


def test_a_cancel_from_another_process_kills_the_running_shell_step(
    engine: sa.Engine, db_url: str, tmp_path: Path
) -> None:
    pidfile = tmp_path / "pid"
    runner = Orchestrator(engine, {"long": parse_workflow(LONG)}, max_workers=2)
    other = Orchestrator(create_engine(db_url), {"long": parse_workflow(LONG)}, max_workers=2,
                         admins=Approvers(users=("UOPS",)))  # fmt: skip
    runner.start(recover=False)
    try:
        run_id = runner.start_run("long", {"pidfile": str(pidfile)}, started_by="URUN")
        pid = int(until(lambda: pidfile.exists() and pidfile.read_text().strip()))
        other.cancel(run_id, "UOPS")  # another process: it has no handle on the shell step
        until(lambda: not process_alive(pid), timeout=20)
        assert runner.wait(run_id, timeout=60).status == "cancelled"
    finally:
        runner.close()
        other.close()
        other.engine.dispose()


EDITED = """
name: deploy
steps:
  - id: gate
    approval:
      message: "Deploy?"
      approvers: {users: [UAAA]}
  - id: renamed
    needs: [gate]
    shell: ["true"]
  - id: added
    shell: ["true"]
"""


def test_a_run_keeps_the_workflow_version_it_started_with(engine: sa.Engine) -> None:
    with running(engine, DEPLOY, recover=True, max_workers=4) as first:
        old_run = first.start_run("deploy", {}, started_by="URUN")
        assert first.wait(old_run, timeout=60).status == "waiting"
    # The file was edited, then the file was deleted, each time before a restart.
    for workflows in ({"deploy": parse_workflow(EDITED)}, {}):
        later = Orchestrator(engine, workflows, max_workers=4)
        later.start()
        try:
            assert later.wait(old_run, timeout=60).status == "waiting"
            if workflows:
                new_run = later.start_run("deploy", {}, started_by="URUN")
                later.wait(new_run, timeout=60)
                assert set(_statuses(later, new_run)) == {"gate", "renamed", "added"}
        finally:
            later.close()
    later = Orchestrator(engine, {}, max_workers=4)
    later.start()
    try:
        later.decide(_pending_id(later, old_run), "UAAA", "approve")
        assert later.wait(old_run, timeout=60).status == "succeeded"
        assert set(_statuses(later, old_run)) == {"build", "test", "package", "gate", "ship"}
    finally:
        later.close()


TWO_GATES = """
name: two-gates
steps:
  - id: gate_a
    approval:
      message: "A?"
      approvers: {users: [UAAA]}
  - id: after_a
    needs: [gate_a]
    shell: ["true"]
  - id: gate_b
    decision:
      message: "B?"
      options: [left, right]
      deciders: {users: [UBBB]}
  - id: after_b
    needs: [gate_b]
    if: steps.gate_b.outputs.choice == 'right'
    shell: ["true"]
"""


def test_several_gates_wait_at_once_and_are_answered_independently(engine: sa.Engine) -> None:
    with running(engine, TWO_GATES, recover=True, max_workers=4) as o:
        run_id = o.start_run("two-gates", {}, started_by="URUN")
        assert o.wait(run_id, timeout=60).status == "waiting"
        with o.engine.connect() as conn:
            ids = dict(conn.execute(sa.text(
                "SELECT step_id, id FROM interaction WHERE run_id = :r AND status = 'pending'"
            ), {"r": run_id}).all())  # fmt: skip
        assert set(ids) == {"gate_a", "gate_b"}
        o.decide(ids["gate_b"], "UBBB", "right")
        until(lambda: _statuses(o, run_id)["after_b"] == "succeeded")
        assert o.wait(run_id, timeout=60).status == "waiting"
        assert _statuses(o, run_id)["gate_a"] == "waiting"
        o.decide(ids["gate_a"], "UAAA", "approve")
        assert o.wait(run_id, timeout=60).status == "succeeded"
        assert set(_statuses(o, run_id).values()) == {"succeeded"}


BYTES = """
name: bytes
steps:
  - id: latin1
    shell: ["printf", "caf\\\\351"]
"""


def test_a_shell_step_that_prints_bytes_that_are_not_utf8_still_finishes(
    engine: sa.Engine,
) -> None:
    with running(engine, BYTES, recover=True, max_workers=2) as o:
        run = o.wait(o.start_run("bytes", {}, started_by="URUN"), timeout=20)
        assert run.status == "succeeded"
        assert run.steps[0].outputs["stdout"] == "caf\ufffd"


def test_a_live_replica_applies_the_deadline_of_a_question_another_process_opened(
    engine: sa.Engine, db_url: str
) -> None:
    workflows = {"expiring": parse_workflow(EXPIRING)}
    clock = FakeClock()
    serving = Orchestrator(engine, workflows, max_workers=2, clock=clock)
    serving.start()
    try:
        cli = Orchestrator(create_engine(db_url), workflows, max_workers=2, clock=clock)
        cli.start(recover=False)  # as `opsloop run`: opens the gate, then exits
        run_id = cli.start_run("expiring", {}, started_by="URUN")
        assert cli.wait(run_id, timeout=60).status == "waiting"
        cli.close()
        cli.engine.dispose()
        serving.sweep()  # its periodic sweep, without waiting 30 s for it
        assert serving.view(run_id).status == "waiting"  # the deadline is a second away
        clock.advance(1)
        until(lambda: serving.view(run_id).status == "failed", timeout=20)
        assert _statuses(serving, run_id) == {"gate": "failed", "after": "skipped"}
    finally:
        serving.close()


TOLERANT = """
name: tolerant
params:
  key: {type: string, required: true}
  succeed_on: {type: int, default: 2}
steps:
  - id: flaky
    python: engine_tasks:flaky
    continue_on_error: true
  - id: other
    shell: ["true"]
"""


def test_retrying_a_tolerated_failure_runs_the_step_again(engine: sa.Engine) -> None:
    with running(engine, TOLERANT, recover=True, max_workers=2,
                 admins=Approvers(users=("UOPS",))) as o:  # fmt: skip
        run_id = o.start_run("tolerant", {"key": uuid.uuid4().hex}, started_by="URUN")
        assert o.wait(run_id, timeout=60).status == "succeeded"
        assert _statuses(o, run_id)["flaky"] == "failed"
        o.retry(run_id, "flaky", "UOPS")
        until(lambda: _statuses(o, run_id)["flaky"] == "succeeded")
        assert o.wait(run_id, timeout=60).status == "succeeded"
