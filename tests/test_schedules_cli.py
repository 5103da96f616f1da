"""`opsloop schedules`: list, pause, resume and run, in-process and as a real subprocess."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import sqlalchemy as sa

from orchestrator import runs
from storage.engine import create_engine
from tests.cli_harness import Cli, in_process_cli
from tests.sample_workflows import workflow_dir

REPO = Path(__file__).resolve().parent.parent

NIGHTLY = """\
name: nightly
params:
  service: {type: string, required: true}
steps:
  - id: greet
    shell: ["echo", "{{ params.service }}"]
schedules:
  - id: h
    cron: "0 * * * *"
    timezone: Europe/Berlin
    params: {service: api}
    channel: C0OPS
"""


@pytest.fixture
def cli(db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys) -> Cli:
    """Call `opsloop ARGS...` in-process; returns (exit code, stdout, stderr)."""
    return in_process_cli(db_url, workflow_dir(tmp_path, {"nightly": NIGHTLY}), monkeypatch, capsys)


def test_run_pause_resume_and_the_list(cli, db_url: str) -> None:
    code, _, err = cli("schedules")  # a read-only command creates no schema
    assert code == 2 and "no opsloop schema yet: `opsloop db upgrade` creates it" in err
    assert cli("db", "upgrade")[0] == 0
    assert cli("schedules")[1].startswith("no schedules yet")

    code, out, _ = cli("schedules", "run", "nightly/h", "--json")
    assert code == 0
    run = json.loads(out)
    assert (run["status"], run["started_by"]) == ("succeeded", "schedule:nightly/h")

    code, out, _ = cli("schedules", "--json")
    [listed] = json.loads(out)
    assert (listed["id"], listed["workflow"], listed["cron"]) == (
        "nightly/h",
        "nightly",
        "0 * * * *",
    )
    assert (listed["last_run_id"], listed["last_run_status"]) == (run["run_id"], "succeeded")
    assert listed["next_fire_local"].endswith(":00 CET") or listed["next_fire_local"].endswith(
        ":00 CEST"
    )
    assert (listed["paused"], listed["missed"], listed["channel"]) == (False, 0, "C0OPS")

    code, out, _ = cli("schedules", "pause", "nightly/h", "--reason", "db work", "--as", "U0LEAD")
    assert (code, out.strip()) == (0, "paused nightly/h")
    code, _, err = cli("schedules", "pause", "nightly/h")
    assert code == 2 and "already paused by U0LEAD" in err
    code, out, _ = cli("schedules")
    assert "paused by U0LEAD: db work" in out and "nightly/h" in out
    code, out, _ = cli("schedules", "resume", "nightly/h", "--as", "U0LEAD")
    assert code == 0 and out.startswith("resumed nightly/h; next fire 20")

    engine = create_engine(db_url)
    with engine.connect() as conn:
        trail = conn.execute(
            sa.select(runs.AUDIT.c.actor, runs.AUDIT.c.action)
            .where(runs.AUDIT.c.action.like("schedule.%"))
            .order_by(runs.AUDIT.c.id)
        ).all()
    engine.dispose()
    assert [tuple(t) for t in trail] == [
        ("U0OPS", "schedule.added"),
        ("U0OPS", "schedule.run_now"),
        ("U0LEAD", "schedule.paused"),
        ("U0LEAD", "schedule.resumed"),
    ]


def test_unknown_schedule_is_a_one_line_mistake(cli) -> None:
    cli("schedules", "run", "nightly/h", "--json")
    code, _, err = cli("schedules", "pause", "nightly/x")
    assert code == 2
    assert err.strip() == "opsloop: no schedule 'nightly/x'; schedules: nightly/h"


def test_the_list_works_as_a_subprocess_without_workflow_files(cli, tmp_path: Path) -> None:
    cli("schedules", "run", "nightly/h", "--json")
    env = {"PATH": os.environ["PATH"], "HOME": str(tmp_path),
           "DATABASE_URL": os.environ["DATABASE_URL"],
           "OPSLOOP_WORKFLOWS": str(tmp_path / "nowhere")}  # fmt: skip
    done = subprocess.run([sys.executable, "-m", "bot.cli", "schedules"], env=env, cwd=REPO,
                          capture_output=True, text=True, timeout=120)  # fmt: skip
    assert done.returncode == 0, done.stderr
    header, row = done.stdout.splitlines()
    assert header.split()[:4] == ["ID", "WORKFLOW", "CRON", "TIMEZONE"]
    assert row.startswith("nightly/h") and "Europe/Berlin" in row and "succeeded" in row


def test_a_cli_with_fewer_workflow_files_switches_off_no_schedule(
    cli, db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Seen by a review: `schedules run` synced from the CLI's own directory and disabled
    every schedule it did not see, until `serve` restarted."""
    assert cli("resume")[0] == 0  # the full directory: nightly/h is known
    other = tmp_path / "elsewhere"
    other.mkdir()
    (other / "tick.yml").write_text(NIGHTLY.replace("name: nightly", "name: tick"))
    monkeypatch.setenv("OPSLOOP_WORKFLOWS", str(other))
    assert cli("schedules", "run", "tick/h", "--json")[0] == 0
    assert cli("resume")[0] == 0
    code, out, _ = cli("schedules", "--json")
    assert code == 0
    states = {s["id"]: s["enabled"] for s in json.loads(out)}
    assert states == {"nightly/h": True, "tick/h": True}
