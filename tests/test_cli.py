"""The `opsloop` CLI end to end: real databases, real workflow files, real subprocesses."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

from storage.models import Interaction
from tests.cli_harness import Cli, in_process_cli
from tests.sample_workflows import EXPIRING, GATED, workflow_dir

REPO = Path(__file__).resolve().parent.parent


FLAKY = """
name: flaky
params:
  marker: {type: string, required: true}
steps:
  - id: check
    shell: ["test", "-e", "{{ params.marker }}"]
  - id: after
    needs: check
    shell: ["true"]
"""


@pytest.fixture
def cli(
    db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> Cli:
    """Call `opsloop ARGS...` in-process; returns (exit code, stdout, stderr)."""
    # The CLI runs on the wall clock: a 1 s deadline could pass while `run` still runs on a
    # loaded machine (the run then fails there); the test moves the deadline itself.
    expiring = EXPIRING.replace("deadline: 1s", "deadline: 1h")
    flows = workflow_dir(tmp_path, {"gated": GATED, "flaky": FLAKY, "expiring": expiring})
    return in_process_cli(db_url, flows, monkeypatch, capsys)


def _json(out: str) -> dict:
    return json.loads(out)


def test_run_to_a_gate_then_decide_finishes_the_run(cli) -> None:
    code, out, _ = cli("run", "gated", "service=api", "--json")
    assert code == 0
    result = _json(out)
    assert result["status"] == "waiting"
    statuses = {s["id"]: s["status"] for s in result["steps"]}
    assert statuses == {"build": "succeeded", "approve": "waiting", "ship": "pending"}
    [gate] = result["pending"]
    assert gate["step"] == "approve" and gate["allowed_users"] == ["U0BOSS", "U0DEPUTY"]

    code, out, _ = cli("decide", gate["id"], "approve", "--as", "U0BOSS", "--json")
    assert code == 0
    result = _json(out)
    assert result["status"] == "succeeded" and result["pending"] == []
    assert [s["status"] for s in result["steps"]] == ["succeeded"] * 3

    code, _, err = cli("decide", gate["id"], "reject", "--as", "U0DEPUTY")
    assert code == 2
    assert "already approved by U0BOSS" in err and "Traceback" not in err


def test_who_may_answer_is_enforced_and_changes_nothing(cli) -> None:
    _, out, _ = cli("run", "gated", "service=web", "--json")
    run_id, gate = _json(out)["run_id"], _json(out)["pending"][0]["id"]

    code, _, err = cli("decide", gate, "approve", "--as", "U0OPS")
    assert code == 2 and "started this run" in err
    code, _, err = cli("decide", gate, "approve", "--as", "U0INTRUDER")
    assert code == 2 and "U0INTRUDER may not answer" in err and "U0BOSS" in err

    code, out, _ = cli("show", run_id, "--json")
    assert code == 0 and _json(out)["status"] == "waiting"
    assert _json(out)["pending"][0]["id"] == gate


def test_reject_fails_the_run_with_exit_1(cli) -> None:
    _, out, _ = cli("run", "gated", "service=api", "--json")
    gate = _json(out)["pending"][0]["id"]
    code, out, _ = cli("decide", gate, "no", "--as", "U0DEPUTY", "--comment", "not today", "--json")
    assert code == 1
    result = _json(out)
    assert result["status"] == "failed" and "not today" in result["error"]
    assert {s["id"]: s["status"] for s in result["steps"]}["ship"] == "skipped"


def test_user_mistakes_exit_2_with_one_clear_line(cli) -> None:
    code, _, err = cli("run", "nope")
    assert code == 2 and "no workflow named 'nope' (the workflows are the files in" in err

    code, _, err = cli("run", "gated", "service=db")
    assert code == 2 and "service" in err and "api" in err

    code, _, err = cli("run", "gated")
    assert code == 2 and "service" in err and "required" in err

    code, _, err = cli("run", "gated", "service=api", "colour=red")
    assert code == 2 and "colour" in err

    code, _, err = cli("decide", "i-doesnotexist", "approve", "--as", "U0BOSS")
    assert code == 2 and "i-doesnotexist" in err

    code, _, err = cli("show", "r-missing")
    assert code == 2 and "r-missing" in err

    code, _, err = cli("decide", "i-doesnotexist", "approve", "--as", " ")
    assert code == 2 and "--as needs a user id" in err

    for command in ("pending", "cancel"):  # an unknown run is named as unknown
        code, _, err = cli(command, "r-missing")
        assert code == 2 and "no run 'r-missing'" in err, (command, err)

    for err in (cli("run", "nope")[2], cli("show", "r-missing")[2]):
        assert "Traceback" not in err and err.count("\n") == 1

    for limit in ("0", "-1", "99999999999999999999", "many"):
        with pytest.raises(SystemExit) as exit_info:
            cli("runs", "--limit", limit)
        assert exit_info.value.code == 2

    code, out, _ = cli("runs", "--json")
    assert code == 0 and _json(out) == []  # none of the mistakes stored a run


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_settings_that_cannot_be_used_exit_2_with_the_fix(cli, monkeypatch, tmp_path) -> None:
    for groups in ("S0OPS=U0F=U0G", "garbage", "S0OPS=U0F;S0OPS=U0G", "S0OPS=U0F U0G"):
        monkeypatch.setenv("OPSLOOP_GROUPS", groups)
        code, _, err = cli("run", "gated", "service=api")
        assert code == 2 and "OPSLOOP_GROUPS" in err and "S0ONCALL=U1,U2" in err, err
    monkeypatch.setenv("OPSLOOP_GROUPS", "oncall=U1,U2")  # the README's old example
    code, _, err = cli("run", "gated", "service=api")
    assert code == 2 and "write it as S0ONCALL=... and list that id" in err, err
    monkeypatch.delenv("OPSLOOP_GROUPS")
    not_a_db = tmp_path / "notes.db"
    not_a_db.write_text("shopping list\n")
    for url in (f"sqlite:///{not_a_db}", "postgresql+psycopg://u:p@[::1/db"):
        monkeypatch.setenv("DATABASE_URL", url)
        code, _, err = cli("runs")
        assert code == 2 and "Traceback" not in err and err.count("\n") == 1, err
    assert not_a_db.read_text() == "shopping list\n"


def test_params_may_follow_options(cli) -> None:
    code, out, _ = cli("run", "gated", "--json", "--as", "U0OPS", "service=api")
    run = _json(out)
    assert code == 0 and run["status"] == "waiting" and run["pending"]
    code, out, _ = cli("decide", run["pending"][0]["id"], "--as", "U0BOSS", "--json", "approve")
    assert code == 0 and _json(out)["status"] == "succeeded"
    with pytest.raises(SystemExit) as exit_info:  # an unknown option is still refused
        cli("run", "gated", "--json", "service=api", "--colour")
    assert exit_info.value.code == 2


def test_failed_step_retried_after_the_cause_is_fixed(cli, tmp_path: Path) -> None:
    marker = tmp_path / "ready"
    code, out, _ = cli("run", "flaky", f"marker={marker}", "--json")
    assert code == 1
    run = _json(out)
    assert [s["status"] for s in run["steps"]] == ["failed", "skipped"]

    code, _, err = cli("retry", run["run_id"], "nostep")
    assert code == 2 and "has no step 'nostep'; its steps: check, after" in err
    code, _, err = cli("retry", run["run_id"], "after")
    assert code == 2 and "step 'after' has not failed; failed steps: check" in err

    marker.touch()
    code, out, _ = cli("retry", run["run_id"], "--json")
    assert code == 0
    assert [s["status"] for s in _json(out)["steps"]] == ["succeeded", "succeeded"]

    code, out, _ = cli("rerun", run["run_id"], "--json")
    assert code == 0 and _json(out)["run_id"] != run["run_id"]
    assert _json(out)["params"] == {"marker": str(marker)}


def test_cancel_closes_pending_gates(cli) -> None:
    _, out, _ = cli("run", "gated", "service=api", "--json")
    run_id, gate = _json(out)["run_id"], _json(out)["pending"][0]["id"]
    code, out, _ = cli("cancel", run_id, "--json")
    assert code == 0 and _json(out)["status"] == "cancelled"
    code, out, _ = cli("pending", "--json")
    assert _json(out) == []
    code, _, err = cli("decide", gate, "approve", "--as", "U0BOSS")
    assert code == 2 and "already cancelled" in err
    code, _, err = cli("cancel", run_id)
    assert code == 2 and "not running" in err


def test_resume_applies_a_deadline_that_passed_while_nobody_ran(cli, engine) -> None:
    code, out, _ = cli("run", "expiring", "--json")
    run = _json(out)
    assert code == 0 and run["status"] == "waiting"
    deadline = datetime.fromisoformat(run["pending"][0]["deadline"])
    assert deadline > datetime.now(UTC)  # `run` exits long before it (an hour)
    with engine.begin() as conn:  # ...and it passes while no process is up
        table = Interaction.__table__
        conn.execute(sa.update(table).where(table.c.run_id == run["run_id"])
                     .values(deadline=datetime.now(UTC) - timedelta(minutes=1)))  # fmt: skip
    code, out, _ = cli("resume", "--json")
    assert code == 0
    assert _json(out) == [{"run_id": run["run_id"], "status": "failed"}]
    _, out, _ = cli("show", run["run_id"])
    assert "nobody answered" in out or "rejected by opsloop" in out


def test_resume_names_a_run_whose_workflow_is_gone_in_one_line(
    cli, engine, tmp_path, caplog
) -> None:
    run_id = _json(cli("run", "gated", "service=api", "--json")[1])["run_id"]
    with engine.begin() as conn:  # as a run from before opsloop kept each run's definition
        conn.execute(sa.text("DELETE FROM workflow_definition"))
        # A run that only waits for a person is not read by the sweep (horizon.py): as if
        # its answer was recorded by a process that died before resuming the step.
        conn.execute(sa.text("UPDATE interaction SET status = 'approved'"))
    (tmp_path / "workflows" / "gated.yml").unlink()
    code, out, err = cli("resume", "--json")
    assert code == 2  # nothing can advance it: said, not waited for
    (record,) = [r for r in caplog.records if run_id in r.getMessage()]
    assert "gated" in record.getMessage() and record.exc_info is None
    assert _json(out) == [{"run_id": run_id, "status": "stuck", "error": record.getMessage()}]
    assert f"opsloop cancel {run_id}" in err


def test_runs_pending_and_show_print_tables(cli) -> None:
    _, out, _ = cli("run", "gated", "service=api", "--json")
    run_id = _json(out)["run_id"]
    code, out, _ = cli("runs")
    assert code == 0 and run_id in out and "waiting" in out
    code, out, _ = cli("pending")
    assert code == 0 and "Ship api?" in out and "opsloop decide" in out
    code, out, _ = cli("show", run_id)
    assert code == 0 and "approve" in out and "approval" in out and "U0BOSS" in out


def test_validate_and_plan(cli, tmp_path: Path) -> None:
    code, out, _ = cli("validate")
    assert code == 0 and "ok" in out
    bad = tmp_path / "bad.yml"
    bad.write_text("name: bad\nsteps:\n  - id: a\n    needs: [b]\n    shell: [x]\n")
    code, out, _ = cli("validate", str(bad))
    assert code == 2 and f"{bad}:4" in out and "unknown step `b`" in out

    code, out, _ = cli("plan", "gated")
    assert code == 0
    assert "level 1:" in out and "level 3:" in out
    assert "asks U0BOSS, U0DEPUTY, not the person who started the run" in out


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_prompts_for_gates_when_asked_to(db_url: str, tmp_path: Path) -> None:
    """A real subprocess answers the gate on its stdin; without --prompt it leaves it pending."""
    flows = tmp_path / "workflows"
    flows.mkdir()
    (flows / "gated.yml").write_text(GATED)
    env = {**os.environ, "DATABASE_URL": db_url, "OPSLOOP_WORKFLOWS": str(flows),
           "OPSLOOP_USER": "U0OPS"}  # fmt: skip
    command = [sys.executable, "-m", "bot.cli", "run", "gated", "service=api"]

    piped = subprocess.run(command, input="", env=env, capture_output=True, text=True,
                           cwd=REPO, timeout=60)  # fmt: skip
    assert piped.returncode == 0, piped.stderr
    assert "waiting" in piped.stdout and "opsloop decide" in piped.stdout

    answered = subprocess.run(
        [*command, "--prompt"], input="maybe\nU0BOSS\napprove\nU0BOSS\n", env=env,
        capture_output=True, text=True, cwd=REPO, timeout=60,
    )  # fmt: skip
    assert answered.returncode == 0, answered.stderr
    assert "is not approve or reject" in answered.stdout  # asked again after a bad answer
    assert "succeeded" in answered.stdout.splitlines()[-1] or "✓ succeeded" in answered.stdout


def test_demo_is_the_main_job(tmp_path: Path) -> None:
    env = {**os.environ, "DATABASE_URL": f"sqlite:///{tmp_path / 'demo.db'}"}
    env.pop("OPSLOOP_WORKFLOWS", None)
    done = subprocess.run([sys.executable, "-m", "bot.cli", "demo"], env=env, cwd=REPO,
                          capture_output=True, text=True, timeout=120)  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.count("✓ succeeded") >= 2
    assert "deploy    ✓ succeeded" in done.stdout and "hello     ✓ succeeded" in done.stdout


def test_serve_refuses_missing_slack_settings_with_one_message(cli, monkeypatch) -> None:
    for var in ("SLACK_BOT_TOKEN", "SLACK_SIGNING_SECRET", "SLACK_APP_TOKEN"):
        monkeypatch.delenv(var, raising=False)
    code, _, err = cli("serve")
    assert code == 2 and "SLACK_BOT_TOKEN" in err and "SLACK_SIGNING_SECRET" in err
    monkeypatch.setenv("SLACK_BOT_TOKEN", "xoxb-1")
    monkeypatch.setenv("SLACK_APP_TOKEN", "not-an-app-token")
    code, _, err = cli("serve")
    assert code == 2 and "xapp-" in err and "Traceback" not in err


def test_an_unreachable_database_is_one_line_not_a_traceback(cli) -> None:
    code, _, err = cli("runs", "--database-url", "postgresql://postgres@127.0.0.1:9/none")
    assert code == 2 and "cannot use the database" in err and "Traceback" not in err


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_db_status_names_a_database_from_a_newer_release(cli, engine) -> None:
    assert cli("db", "status")[0] == 0
    with engine.begin() as conn:
        conn.execute(sa.text("UPDATE alembic_version SET version_num = '9999'"))
    code, out, _ = cli("db", "status")
    assert code == 1 and "newer opsloop release" in out and "db upgrade" not in out
