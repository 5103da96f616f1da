"""What keeps one step or one workflow from taking the process (issue 16): a default
step timeout and each workflow's share of the workers. Real `sleep` processes."""

from __future__ import annotations

import threading
import uuid
from pathlib import Path

import ask_tasks
import engine_tasks
import pytest
import sqlalchemy as sa

from bot.cli import main
from bot.settings import Settings, SettingsError
from orchestrator import leases, runs
from orchestrator.clock import utcnow
from orchestrator.engine import Orchestrator
from orchestrator.queries import open_interactions
from orchestrator.step_limits import StepLimits, WorkerShare
from storage.engine import write_transaction
from storage.statuses import FINISHED_RUN, StepStatus
from tests.orchestrators import running
from tests.polling import until

HOG = "name: hog\nsteps:\n" + "".join(
    f"  - id: s{i}\n    shell: [sleep, '600']\n" for i in range(8)
)
HELLO = "name: hello\nsteps:\n  - id: greet\n    shell: [echo, hi]\n"


def test_one_workflow_cannot_take_every_worker(engine: sa.Engine) -> None:
    limits = StepLimits(workflow_workers=3)
    with running(engine, HOG, HELLO, max_workers=4, limits=limits) as orch:
        hog = orch.start_run("hog", {}, started_by="U0HOG")
        try:
            until(lambda: _running(orch, hog) == 3, what="the hog's share to be running")
            hello = orch.start_run("hello", {}, started_by="U0HI")
            run = until(lambda: (r := orch.view(hello)).status in FINISHED_RUN and r,
                        what="the other workflow's run to finish beside the hog")  # fmt: skip
            assert run.status == "succeeded"
            assert _running(orch, hog) == 3  # the rest of its steps wait, pending
        finally:
            orch.cancel(hog, by="U0HOG")


def test_a_held_back_run_of_the_same_workflow_starts_when_a_step_ends(engine: sa.Engine) -> None:
    quick = "name: quick\nsteps:\n" + "".join(
        f"  - id: q{i}\n    shell: [sh, -c, 'sleep 0.05']\n" for i in range(6)
    )
    with running(engine, quick, max_workers=4, limits=StepLimits(workflow_workers=2)) as orch:
        first, second = (orch.start_run("quick", {}, started_by="U0Q") for _ in range(2))
        for run_id in (first, second):
            run = until(lambda r=run_id: (v := orch.view(r)).status in FINISHED_RUN and v,
                        what=f"run {run_id} to finish")  # fmt: skip
            assert run.status == "succeeded"


def _running(orch, run_id: str) -> int:
    return sum(s.status == StepStatus.RUNNING for s in orch.view(run_id).steps)


def test_a_step_without_timeout_gets_the_default(
    db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    flows = tmp_path / "workflows"
    flows.mkdir()
    (flows / "stuck.yml").write_text(
        "name: stuck\nsteps:\n  - id: forever\n    shell: [sleep, '600']\n"
        "  - id: own\n    shell: [sleep, '0.01']\n    timeout: 1h\n"
    )
    monkeypatch.setenv("DATABASE_URL", db_url)
    monkeypatch.setenv("OPSLOOP_WORKFLOWS", str(flows))
    monkeypatch.setenv("OPSLOOP_STEP_TIMEOUT", "300ms")
    assert main(["run", "stuck"]) == 1
    out = capsys.readouterr().out
    assert "sleep was killed after 0.3 s" in out
    assert "own: exit_code=0" in out  # its own timeout wins over the default


def test_the_limits_are_settings_with_documented_defaults() -> None:
    settings = Settings.from_env({})
    assert settings.step_timeout == 3600 and settings.workflow_workers == 12
    assert Settings.from_env({"OPSLOOP_MAX_WORKERS": "4"}).workflow_workers == 3
    assert Settings.from_env({"OPSLOOP_STEP_TIMEOUT": "none"}).step_timeout is None
    with pytest.raises(SettingsError, match="OPSLOOP_STEP_TIMEOUT='soon' must be a duration"):
        Settings.from_env({"OPSLOOP_STEP_TIMEOUT": "soon"})
    with pytest.raises(SettingsError, match="from 1 to OPSLOOP_MAX_WORKERS"):
        Settings.from_env({"OPSLOOP_WORKFLOW_WORKERS": "40"})


SHARED = """
name: shared
params:
  key: {type: string, required: true}
steps:
  - id: p
    python: engine_tasks:held
  - id: q
    shell: ["true"]
"""


def test_a_step_another_replica_claimed_does_not_keep_its_share(engine: sa.Engine) -> None:
    """Share 1: `p` runs here, `q` is held back; another replica claims `q` meanwhile.
    When `p` ends, this process's pass grants `q`, loses its claim and passes again from a
    fresh read: the grant for `q` must not stay counted, or no step of this workflow
    starts here again (the next run stalled, pending, for good)."""
    first, second = uuid.uuid4().hex, uuid.uuid4().hex
    holds = [engine_tasks.GATES.setdefault(k, threading.Event()) for k in (first, second)]
    with running(engine, SHARED, max_workers=4, limits=StepLimits(workflow_workers=1)) as orch:
        run_id = orch.start_run("shared", {"key": first}, started_by="U0SH")
        try:
            until(lambda: engine_tasks.CALLS.get(first) == 1, what="p to run here")
            assert orch.view(run_id).step("q").status == "pending"  # held back by the share
            now = utcnow()
            claim = {"status": "running", "thread_id": f"{run_id}/q/there", "started_at": now,
                     "attempts": 1, **leases.ownership("there", now)}  # fmt: skip
            with write_transaction(engine) as conn:  # as another replica claims it
                assert runs.set_step(conn, run_id, "q", expect=["pending"], **claim)
            holds[0].set()
            until(lambda: orch.view(run_id).step("p").status == "succeeded", what="p recorded")
            orch.start_run("shared", {"key": second}, started_by="U0SH")
            until(lambda: engine_tasks.CALLS.get(second) == 1,
                  what="the next run's step to start in the share q's grant left")  # fmt: skip
            holds[1].set()
        finally:
            for hold in holds:
                hold.set()


ASKING = "name: asking\nparams:\n  key: {type: string, required: true}\nsteps:\n" + "".join(
    f"  - id: a{i}\n    python: ask_tasks:ask_then_hold_worker\n" for i in range(6)
)


def answer_all_six(orch: Orchestrator, engine: sa.Engine, run_id: str) -> None:
    """Wait until every step of ASKING asks, then approve all six at once."""
    asked = until(lambda: len(q := open_interactions(engine, run_id)) == 6 and q,
                  what="every step to ask")  # fmt: skip
    for question in asked:
        orch.decide(question.id, "U0OPS", "approve")


def test_steps_resumed_by_answers_stay_within_the_share(engine: sa.Engine) -> None:
    """Six questions of one workflow answered at once: their steps, resumed outside any
    pass, took all four workers (the share counted only steps a pass started), and
    another workflow's run waited behind them."""
    key = uuid.uuid4().hex
    ask_tasks.RELEASE[key] = threading.Event()
    with running(engine, ASKING, HELLO, max_workers=4,
                 limits=StepLimits(workflow_workers=2)) as orch:  # fmt: skip
        run_id = orch.start_run("asking", {"key": key}, started_by="U0RUN")
        try:
            answer_all_six(orch, engine, run_id)
            until(lambda: ask_tasks.PAST_ANSWER.get(key, 0) >= 2, what="the share to be resumed")
            hello = orch.start_run("hello", {}, started_by="U0HI")
            run = until(lambda: (r := orch.view(hello)).status in FINISHED_RUN and r,
                        what="the other workflow's run to finish beside them")  # fmt: skip
            assert run.status == "succeeded"
            assert ask_tasks.PEAK[key] == 2
        finally:
            ask_tasks.RELEASE[key].set()
        done = until(lambda: (r := orch.view(run_id)).status in FINISHED_RUN and r,
                     what="the resumed steps to finish, two at a time")  # fmt: skip
        assert done.status == "succeeded" and ask_tasks.PEAK[key] == 2


def test_a_resumed_step_the_share_held_back_does_not_start_in_a_drain(engine: sa.Engine) -> None:
    """Answers past the share wait for room; a drain (SIGTERM) began, then the running
    one ended and gave its room to the next, which started on the pool after drain()
    had said nothing was left: the process exit then cut it off mid-step."""
    key = uuid.uuid4().hex
    ask_tasks.RELEASE[key] = threading.Event()
    with running(engine, ASKING, max_workers=4,
                 limits=StepLimits(workflow_workers=1)) as orch:  # fmt: skip
        run_id = orch.start_run("asking", {"key": key}, started_by="U0RUN")
        try:
            answer_all_six(orch, engine, run_id)
            until(lambda: ask_tasks.STARTED.get(key, 0) == 1, what="one step to resume")
            orch.drain(0.1)
        finally:
            ask_tasks.RELEASE[key].set()
        until(lambda: ask_tasks.PAST_ANSWER[key] == 0, what="the running step to end")
        with pytest.raises(AssertionError):  # a second start would come within milliseconds
            until(lambda: ask_tasks.STARTED[key] > 1, timeout=3.0)
    assert ask_tasks.STARTED[key] == 1


def test_a_run_cancelled_here_leaves_nothing_in_the_share() -> None:
    """The calls the advancer makes for a run cancelled here (or finished by another
    replica): granted, its steps end and are released, and no pass here finishes it, so
    `forget` never comes. Its entry stayed for good: one per such run."""
    share = WorkerShare(2, wake=lambda run_id: None)
    for n in range(50):
        run_id = f"r{n}"
        granted = share.grant(run_id, "wf", ("a", "b", "c"))
        assert granted == ("a", "b")
        for step in granted:
            share.release(run_id, step)
        share.grant(run_id, "wf", ())  # the pass after the cancel: nothing ready
    assert share.tracked() == 0
    started: list[str] = []
    assert share.admit("r", "wf", "x") and share.admit("r", "wf", "y")  # room: start now
    assert not share.admit("r", "wf", "z")  # past the share: nothing kept until `wait`
    share.wait("r", "wf", "z", lambda: started.append("z"))
    assert started == [] and share.tracked() == 1
    share.release("r", "x")
    assert started == ["z"]
    share.release("r", "y")
    share.release("r", "z")
    assert share.tracked() == 0
