"""What keeps one step or one workflow from taking the process (issue 16): a default
step timeout and each workflow's share of the workers. Real `sleep` processes."""

from __future__ import annotations

import threading
import uuid
from pathlib import Path

import engine_tasks
import pytest
import sqlalchemy as sa

from bot.cli import main
from bot.settings import Settings, SettingsError
from orchestrator import leases, runs
from orchestrator.clock import utcnow
from orchestrator.step_limits import StepLimits
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
