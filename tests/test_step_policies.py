"""Step and gate policies on real databases: timeouts, what a retry retries, group approvers,
max_parallel, a deadline racing answers, and quorums under racing answers."""

from __future__ import annotations

import threading
import uuid
from collections import Counter
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import engine_tasks
import pytest
import sqlalchemy as sa

from orchestrator import gates, interactions
from orchestrator.clock import FakeClock
from orchestrator.engine import Orchestrator
from orchestrator.errors import AlreadyAnswered, InvalidAnswer, NotAllowed, OrchestratorError
from orchestrator.protocol import RunView, StaticDirectory, StepView
from orchestrator.workflow.gate_definitions import InputField
from storage.engine import read_transaction
from storage.statuses import FINISHED_RUN
from tests.orchestrators import running
from tests.polling import process_alive, until


def finished(orch: Orchestrator, run_id: str) -> RunView:
    return until(lambda: (r := orch.view(run_id)).status in FINISHED_RUN and r,
                 what=f"run {run_id} to finish")  # fmt: skip


def steps(run: RunView) -> dict[str, StepView]:
    return {s.step_id: s for s in run.steps}


def open_interaction(orch: Orchestrator, run_id: str) -> Mapping[str, Any]:
    def first() -> Mapping[str, Any] | None:
        with read_transaction(orch.engine) as conn:
            return next(iter(interactions.pending_interactions(conn, run_id)), None)

    return until(first, what=f"a question of run {run_id}")


def interaction(orch: Orchestrator, iid: str) -> Mapping[str, Any]:
    with read_transaction(orch.engine) as conn:
        row = interactions.load_interaction(conn, iid)
    assert row is not None
    return row


def audited(orch: Orchestrator, iid: str) -> Counter[str]:
    with orch.engine.connect() as conn:
        rows = conn.execute(
            sa.text("SELECT action FROM audit_log WHERE interaction_id = :i"), {"i": iid}
        )
        return Counter(r[0] for r in rows)


def race(
    orch: Orchestrator, iid: str, users: list[str], release: Callable[[], object] = lambda: None
) -> tuple[list[str], list[OrchestratorError]]:
    """Each user approves on their own thread, all at once after `release()` returns;
    who got through, and what the others were told."""
    barrier = threading.Barrier(len(users) + 1)
    lock = threading.Lock()
    won: list[str] = []
    lost: list[OrchestratorError] = []

    def approve(user: str) -> None:
        barrier.wait(timeout=30)
        try:
            orch.decide(iid, user, "approve")
        except OrchestratorError as exc:
            with lock:
                lost.append(exc)
        else:
            with lock:
                won.append(user)

    threads = [threading.Thread(target=approve, args=(u,)) for u in users]
    for t in threads:
        t.start()
    release()
    barrier.wait(timeout=30)
    for t in threads:
        t.join(timeout=60)
    assert not any(t.is_alive() for t in threads)
    return won, lost


# -- timeouts and retries ---------------------------------------------------------

TIMED = """
name: timed
params:
  pidfile: {type: string, required: true}
  key: {type: string, required: true}
steps:
  - id: slow_shell
    shell: ["sh", "-c", "echo $$ > {{ params.pidfile }}; exec sleep 30"]
    timeout: 1s
  - id: slow_python
    python: engine_tasks:held
    timeout: 300ms
  - id: after
    needs: [slow_shell, slow_python]
    shell: ["true"]
"""


def test_a_step_past_its_timeout_fails_and_its_process_is_gone(
    engine: sa.Engine, tmp_path: Path
) -> None:
    key, pidfile = uuid.uuid4().hex, tmp_path / "pid"
    gate = engine_tasks.GATES[key] = threading.Event()
    with running(engine, TIMED) as orch:
        try:
            run_id = orch.start_run("timed", {"pidfile": str(pidfile), "key": key},
                                    started_by="U0RUN")  # fmt: skip
            # The pid file shows the process ran; whether it is still alive when this thread
            # next runs is up to load: its timeout (1 s) may have killed it already.
            pid = int(until(lambda: pidfile.exists() and pidfile.read_text().strip()))
            run = finished(orch, run_id)
        finally:
            gate.set()  # the abandoned python task's thread may end now
    got = steps(run)
    assert run.status == "failed"
    assert {k: (s.status, s.attempts) for k, s in got.items()} == {
        "slow_shell": ("failed", 1), "slow_python": ("failed", 1), "after": ("skipped", 0),
    }  # fmt: skip
    assert got["slow_shell"].error == "sh was killed after 1 s"
    assert (got["slow_python"].error or "").startswith(
        "engine_tasks:held did not finish within 0.3 s and did not stop within 0.3 s"
    )
    assert engine_tasks.CALLS[key] == 1
    until(lambda: not process_alive(pid), timeout=30, what=f"timed-out process {pid} to go")


COOPERATIVE = """
name: cooperative
params:
  key: {type: string, required: true}
steps:
  - id: polite
    python: engine_tasks:cooperative
    # A told task gets as long again to return; it takes 50 ms, then its thread must run:
    # 200 ms left 150 ms of margin for that on a loaded machine, 1 s leaves 950.
    timeout: 1s
    retry: {attempts: 3, on: [timeout]}
  - id: stubborn
    python: engine_tasks:held
    timeout: 200ms
    retry: {attempts: 3, on: [timeout, error]}
"""


def test_python_attempts_past_their_timeout_never_overlap(engine: sa.Engine) -> None:
    key = uuid.uuid4().hex
    gate = engine_tasks.GATES[key] = threading.Event()
    with running(engine, COOPERATIVE) as orch:
        try:
            run = finished(orch, orch.start_run("cooperative", {"key": key}, started_by="U0R"))
        finally:
            gate.set()
    got = steps(run)
    assert (got["polite"].status, got["polite"].attempts) == ("failed", 3)
    assert got["polite"].error == (
        "engine_tasks:cooperative did not finish within 1 s (told to stop, it stopped)"
    )
    now, most, told = engine_tasks.RUNNING[key]
    assert (now, most, told) == (0, 1, 3)  # one attempt at a time, each told it timed out
    # A task that ignores ctx.cancelled still runs: the step fails and is not retried.
    assert (got["stubborn"].status, got["stubborn"].attempts) == ("failed", 1)
    assert "did not stop within 0.2 s of being told" in (got["stubborn"].error or "")
    assert engine_tasks.CALLS[key] == 1


def test_cancelling_a_run_tells_its_running_python_task(engine: sa.Engine) -> None:
    key = uuid.uuid4().hex
    flow = ("name: told\nparams:\n  key: {type: string, required: true}\nsteps:\n"
            "  - id: polite\n    python: engine_tasks:cooperative\n")  # fmt: skip
    with running(engine, flow) as orch:
        run_id = orch.start_run("told", {"key": key}, started_by="U0R")
        until(lambda: engine_tasks.RUNNING.get(key, [0])[0] == 1, what="the task to start")
        orch.cancel(run_id, "U0R")
        # Before: nothing told it; it ran on until its own 30 s wait ended.
        until(lambda: engine_tasks.RUNNING[key][2] == 1, what="the task to see ctx.cancelled")
    assert finished(orch, run_id).status == "cancelled"


def _retried(step_id: str, body: str, on: str, timeout: str = "") -> str:
    return (
        f"  - id: {step_id}\n"
        f'    shell: ["sh", "-c", "echo $$ >> {{{{ params.dir }}}}/{step_id}; {body}"]\n'
        f"    retry: {{attempts: 3, backoff: 0, on: [{on}]}}\n"
        + (f"    timeout: {timeout}\n" if timeout else "")
    )


RETRIED = (
    "name: retried\nparams:\n  dir: {type: string, required: true}\nsteps:\n"
    + _retried("timeout_on_error", "exec sleep 30", "error", "500ms")
    + _retried("timeout_on_timeout", "exec sleep 30", "timeout", "500ms")
    + _retried("error_on_timeout", "exit 3", "timeout")
    + _retried("error_on_error", "exit 3", "error")
)


def test_retry_on_retries_only_the_failures_it_names(engine: sa.Engine, tmp_path: Path) -> None:
    with running(engine, RETRIED) as orch:
        run = finished(orch, orch.start_run("retried", {"dir": str(tmp_path)}, started_by="U0RUN"))
    got = steps(run)
    assert {k: (s.status, s.attempts) for k, s in got.items()} == {
        "timeout_on_error": ("failed", 1), "timeout_on_timeout": ("failed", 3),
        "error_on_timeout": ("failed", 1), "error_on_error": ("failed", 3),
    }  # fmt: skip
    pids = {k: [int(p) for p in (tmp_path / k).read_text().split()] for k in got}
    assert {k: len(p) for k, p in pids.items()} == {k: s.attempts for k, s in got.items()}
    assert got["timeout_on_timeout"].error == "sh was killed after 0.5 s"
    assert (got["error_on_timeout"].error or "").startswith("sh exited with 3")
    assert got["error_on_timeout"].outputs == {"exit_code": 3, "stdout": "", "stderr": ""}
    killed = pids["timeout_on_error"] + pids["timeout_on_timeout"]
    until(
        lambda: not any(map(process_alive, killed)),
        timeout=30,
        what="the timed-out processes to go",
    )


# -- who may answer ---------------------------------------------------------------

GROUPED = """
name: grouped
steps:
  - id: gate
    approval:
      message: "page the on-call?"
      approvers: {groups: [S0ONCALL]}
  - id: after
    needs: [gate]
    shell: ["true"]
"""


def test_a_gate_for_a_group_takes_its_members_and_refuses_everyone_else(
    engine: sa.Engine,
) -> None:
    groups = StaticDirectory.parse("S0ONCALL=U0MEMBER,U0PEER; S0LEADS=U0LEAD")  # OPSLOOP_GROUPS
    with running(engine, GROUPED, directory=groups) as orch:
        run_id = orch.start_run("grouped", {}, started_by="U0RUN")
        iid = open_interaction(orch, run_id)["id"]
        for outsider in ("U0LEAD", "U0NOBODY"):  # in another group; in none
            with pytest.raises(NotAllowed, match=f"{outsider} may not answer .* group S0ONCALL"):
                orch.decide(iid, outsider, "approve")
        assert interaction(orch, iid)["status"] == "pending"
        assert orch.wait(run_id, timeout=60).status == "waiting"
        orch.decide(iid, "U0MEMBER", "approve")
        run = finished(orch, run_id)
    assert run.status == "succeeded"
    assert steps(run)["gate"].outputs == {"approved": True, "approved_by": ["U0MEMBER"]}
    actions = audited(orch, iid)
    assert (actions["interaction.refused"], actions["interaction.answered"]) == (2, 1)


def test_a_gates_question_is_audited_as_opened_once_after_it_is_answered(
    engine: sa.Engine,
) -> None:
    with running(engine, GROUPED, directory=StaticDirectory.parse("S0ONCALL=U0MEMBER")) as orch:
        run_id = orch.start_run("grouped", {}, started_by="U0RUN")
        iid = open_interaction(orch, run_id)["id"]
        orch.decide(iid, "U0MEMBER", "approve")
        assert finished(orch, run_id).status == "succeeded"
    assert audited(orch, iid) == Counter({"interaction.opened": 1, "interaction.answered": 1})


# -- max_parallel -----------------------------------------------------------------

PARALLEL = """
name: parallel
max_parallel: 2
params:
  key: {type: string, required: true}
  limit: {type: int, default: 2}
steps:
  - id: gate
    approval: {message: "ship?"}
  - id: s0
    python: engine_tasks:overlapping
  - id: s1
    python: engine_tasks:overlapping
  - id: s2
    python: engine_tasks:overlapping
  - id: s3
    python: engine_tasks:overlapping
  - id: s4
    python: engine_tasks:overlapping
  - id: s5
    python: engine_tasks:overlapping
  - id: ship
    needs: [gate, s0, s1, s2, s3, s4, s5]
    shell: ["true"]
"""


def test_max_parallel_caps_running_steps_and_a_waiting_gate_takes_no_slot(
    engine: sa.Engine,
) -> None:
    key = uuid.uuid4().hex
    expected = {"gate": "waiting", "ship": "pending", **{f"s{i}": "succeeded" for i in range(6)}}
    with running(engine, PARALLEL) as orch:
        run_id = orch.start_run("parallel", {"key": key}, started_by="U0RUN")
        until(lambda: {s.step_id: s.status for s in orch.view(run_id).steps} == expected,
              timeout=60, what="the six steps to finish beside the open gate")  # fmt: skip
        seen = engine_tasks.OVERLAPS[key]
        assert (seen["calls"], seen["peak"], seen["now"]) == (6, 2, 0)
        orch.decide(open_interaction(orch, run_id)["id"], "U0BOSS", "approve")
        run = finished(orch, run_id)
    assert run.status == "succeeded" and steps(run)["ship"].status == "succeeded"


# -- racing answers ---------------------------------------------------------------

DEADLINED = """
name: deadlined
steps:
  - id: gate
    approval:
      message: "ok?"
      deadline: 1s
      on_deadline: reject
  - id: after
    needs: [gate]
    shell: ["true"]
"""

ROUNDS = 5  # the deadline and twenty answers race again in each


def test_a_deadline_racing_twenty_approvals_applies_exactly_one_outcome(engine: sa.Engine) -> None:
    users = [f"U0R{n:02d}" for n in range(20)]
    clock = FakeClock()
    with running(engine, DEADLINED, clock=clock) as orch:
        for _ in range(ROUNDS):
            run_id = orch.start_run("deadlined", {}, started_by="U0RUN")
            row = open_interaction(orch, run_id)
            # The jump makes the deadline fire on the timers' thread while the answers go.
            iid, at = row["id"], row["deadline"]
            won, lost = race(orch, iid, users, lambda at=at: clock.set(at))
            run = finished(orch, run_id)
            row, actions, got = interaction(orch, iid), audited(orch, iid), steps(run)
            assert all(isinstance(exc, AlreadyAnswered) for exc in lost), lost
            assert {exc.answered_by for exc in lost} <= {row["answered_by"]}
            assert len(row["responses"]) == 1 and len(won) + len(lost) == 20
            if row["status"] == "approved":  # an answer came first
                assert won == [row["answered_by"]], (won, row["answered_by"])
                assert (run.status, got["gate"].status, got["after"].status) == (
                    "succeeded", "succeeded", "succeeded")  # fmt: skip
                assert got["gate"].outputs == {"approved": True, "approved_by": won}
                assert (actions["interaction.answered"], actions["interaction.deadline"]) == (1, 0)
            else:  # the deadline came first
                assert (row["status"], row["answered_by"], won) == ("rejected", "opsloop", [])
                assert (run.status, got["gate"].status, got["after"].status) == (
                    "failed", "failed", "skipped")  # fmt: skip
                assert got["gate"].error == "rejected by opsloop"
                assert (actions["interaction.answered"], actions["interaction.deadline"]) == (0, 1)


QUORUM = """
name: quorum
params:
  key: {type: string, required: true}
  succeed_on: {type: int, default: 1}
steps:
  - id: gate
    approval:
      message: "ok?"
      required: 2
  - id: after
    needs: [gate]
    python: engine_tasks:flaky
"""


def test_a_quorum_of_two_under_twenty_racing_approvers_records_two_and_passes_once(
    engine: sa.Engine,
) -> None:
    key = uuid.uuid4().hex
    with running(engine, QUORUM) as orch:
        run_id = orch.start_run("quorum", {"key": key}, started_by="U0RUN")
        iid = open_interaction(orch, run_id)["id"]
        won, lost = race(orch, iid, [f"U0Q{n:02d}" for n in range(20)])
        run = finished(orch, run_id)
        row = interaction(orch, iid)
    assert row["status"] == "approved" and len(won) == 2, (row["status"], won, lost)
    assert all(isinstance(exc, AlreadyAnswered) for exc in lost) and len(lost) == 18, lost
    closer = row["answered_by"]
    assert closer in won and {exc.answered_by for exc in lost} == {closer}
    recorded = [r["user"] for r in row["responses"]]
    assert sorted(recorded) == sorted(won) and recorded[-1] == closer
    assert audited(orch, iid)["interaction.answered"] == 2
    assert run.status == "succeeded"
    assert steps(run)["gate"].outputs == {"approved": True, "approved_by": recorded}
    assert engine_tasks.CALLS[key] == 1  # the gate let the run through once


def test_one_person_approving_twice_counts_once_toward_a_quorum(engine: sa.Engine) -> None:
    key = uuid.uuid4().hex
    with running(engine, QUORUM) as orch:
        run_id = orch.start_run("quorum", {"key": key}, started_by="U0RUN")
        iid = open_interaction(orch, run_id)["id"]
        won, lost = race(orch, iid, ["U0SAME"] * 20)
        assert won == ["U0SAME"] and len(lost) == 19
        assert all(isinstance(exc, InvalidAnswer) and "already approved" in str(exc)
                   for exc in lost), lost  # fmt: skip
        row = interaction(orch, iid)
        assert (row["status"], [r["user"] for r in row["responses"]]) == ("pending", ["U0SAME"])
        for spelled in ("u0same", "U0SAME "):  # the same person, spelled differently
            with pytest.raises(InvalidAnswer, match="already approved"):
                orch.decide(iid, spelled, "approve")
        assert orch.wait(run_id, timeout=60).status == "waiting"
        orch.decide(iid, "U0OTHER", "approve")
        run = finished(orch, run_id)
        with pytest.raises(AlreadyAnswered, match="approved by U0OTHER"):
            orch.decide(iid, "U0SAME", "approve")
    assert run.status == "succeeded"
    assert steps(run)["gate"].outputs == {"approved": True, "approved_by": ["U0SAME", "U0OTHER"]}
    assert audited(orch, iid)["interaction.answered"] == 2
    assert engine_tasks.CALLS[key] == 1


FIELDS = [InputField("n", "number", required=True), InputField("t", "text", required=False)]


@pytest.mark.parametrize("answer, message", [
    ({"n": "nan"}, "is not a number"), ({"n": "inf"}, "is not a number"),
    ({"n": "1e999"}, r"not a number \(write 1000, not 1e3\)"), ({"n": True}, "is not a number"),
    ({"n": "three"}, "is not a number"), ({"n": 1, "t": {"a": 1}}, "takes text"),
    ({"n": "99999999999999999999"}, "too large: whole numbers go up to"),
    ({"n": 1, "t": ["x"]}, "takes text"), ({"n": 1, "t": False}, "takes text"),
])  # fmt: skip
def test_input_fields_refuse_values_of_the_wrong_type(answer: dict, message: str) -> None:
    with pytest.raises(InvalidAnswer, match=message):
        gates.coerce_input(FIELDS, answer)


def test_input_fields_take_numbers_and_text() -> None:
    assert gates.coerce_input(FIELDS, {"n": "2.5", "t": "ok"}) == {"n": 2.5, "t": "ok"}
    assert gates.coerce_input(FIELDS, {"n": 3, "t": 7}) == {"n": 3, "t": "7"}
