"""`opsloop serve --no-slack`: the engine alone fires schedules and applies deadlines,
as a real process, and a SIGTERM stops it cleanly."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path

import sqlalchemy as sa

from storage.models import Interaction, Schedule
from tests.polling import until
from tests.sample_workflows import EXPIRING
from tests.scraped import Samples, parsed, value
from tests.serve_process import metrics_port, serving_headless

ROOT = Path(__file__).resolve().parent.parent
NIGHTLY = """
name: nightly
schedules:
  - id: every-night
    cron: "0 3 * * *"
steps:
  - id: work
    shell: ["true"]
"""


def opsloop(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "bot.cli", *args], env=env, cwd=ROOT,
                          capture_output=True, text=True, timeout=120)  # fmt: skip


def test_serve_without_slack_fires_due_schedules_and_deadlines(
    db_url: str, engine: sa.Engine, tmp_path: Path
) -> None:
    flows = tmp_path / "workflows"
    flows.mkdir()
    (flows / "nightly.yml").write_text(NIGHTLY)
    (flows / "expiring.yml").write_text(EXPIRING.replace("deadline: 1s", "deadline: 1h"))
    env = {**os.environ, "DATABASE_URL": db_url, "OPSLOOP_WORKFLOWS": str(flows),
           "OPSLOOP_USER": "U0OPS"}  # fmt: skip
    for key in ("SLACK_BOT_TOKEN", "SLACK_SIGNING_SECRET", "SLACK_APP_TOKEN"):
        env.pop(key, None)
    waiting = opsloop(env, "run", "expiring", "--json")
    assert waiting.returncode == 0, waiting.stderr
    assert opsloop(env, "resume").returncode == 0  # syncs the schedule: next fire 03:00
    past = datetime.now(UTC) - timedelta(seconds=5)
    with engine.begin() as conn:  # time passes while no process is up
        conn.execute(sa.update(Schedule.__table__).values(next_fire_at=past))
        conn.execute(sa.update(Interaction.__table__).values(deadline=past))

    def statuses() -> dict[str, str]:
        with engine.connect() as conn:
            rows = conn.execute(sa.text("SELECT started_by, status FROM workflow_run"))
            return dict(rows.all())

    with serving_headless(env, tmp_path / "serve.log") as serve:
        until(lambda: statuses().get("schedule:nightly/every-night") == "succeeded",
              timeout=60, what="the schedule's run")  # fmt: skip
        until(lambda: statuses().get("U0OPS") == "failed", timeout=60,
              what="the deadline's reject")  # fmt: skip
        assert serve.terminate() == 0, serve.output()
    out = serve.output()
    assert "without Slack" in out and "stopped" in out
    assert "schedule:nightly/every-night" in out  # it says what it does


def test_sigterm_lets_a_running_step_finish_and_a_restart_asks_nobody(
    db_url: str, engine: sa.Engine, tmp_path: Path
) -> None:
    release, count = tmp_path / "release", tmp_path / "count"
    flows = tmp_path / "workflows"
    flows.mkdir()
    wait = f"while [ ! -f {release} ]; do sleep 0.02; done; echo ran >> {count}"
    (flows / "nightly.yml").write_text(
        NIGHTLY.replace('shell: ["true"]', f'shell: ["sh", "-c", "{wait}"]')
    )
    env = {**os.environ, "DATABASE_URL": db_url, "OPSLOOP_WORKFLOWS": str(flows),
           "OPSLOOP_SHUTDOWN_GRACE": "60"}  # fmt: skip
    assert opsloop(env, "resume").returncode == 0  # syncs the schedule
    with engine.begin() as conn:
        conn.execute(sa.update(Schedule.__table__).values(
            next_fire_at=datetime.now(UTC) - timedelta(seconds=5)))  # fmt: skip

    def step_status() -> str | None:
        with engine.connect() as conn:
            return conn.execute(sa.text("SELECT status FROM step_run")).scalar()

    with serving_headless(env, tmp_path / "first.log") as first:
        until(lambda: step_status() == "running", timeout=60, what="the step to run")
        first.process.send_signal(signal.SIGTERM)
        release.touch()  # the step ends within the grace period
        assert first.exited() == 0, first.output()
    assert step_status() == "succeeded" and count.read_text() == "ran\n"
    with serving_headless(env, tmp_path / "second.log") as second:
        until(lambda: second.says("without Slack"), timeout=60, what="the restarted serve")
        assert second.terminate() == 0, second.output()
    with engine.connect() as conn:
        asked = conn.execute(sa.text("SELECT count(*) FROM interaction")).scalar()
    assert (asked, count.read_text()) == (0, "ran\n")  # recorded once, nobody asked


def test_serve_without_slack_exports_metrics_on_its_own_port(db_url: str, tmp_path: Path) -> None:
    flows = tmp_path / "workflows"
    flows.mkdir()
    (flows / "nightly.yml").write_text(NIGHTLY)
    # Any free port, which serve logs: a port picked free here and closed could be taken
    # before serve binds it.
    env = {**os.environ, "DATABASE_URL": db_url, "OPSLOOP_WORKFLOWS": str(flows),
           "OPSLOOP_METRICS_PORT": "0"}  # fmt: skip

    def scraped(port: int) -> Samples | None:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
                return parsed(r.read())
        except OSError:
            return None

    with serving_headless(env, tmp_path / "serve.log") as serve:
        port = until(lambda: metrics_port(serve.log) or serve.process.poll() is not None,
                     timeout=60, what="serve to say where /metrics is")  # fmt: skip
        assert serve.process.poll() is None, serve.output()
        m = until(lambda: (m := scraped(port)) and value(m, "opsloop_replicas_alive") == 1 and m,
                  timeout=60, what="/metrics on OPSLOOP_METRICS_PORT")  # fmt: skip
        assert any(name == "opsloop_build_info" for name, _ in m)
        env["OPSLOOP_METRICS_PORT"] = str(port)
        taken = opsloop(env, "serve", "--no-slack")  # the port is in use: one line, exit 2
        assert taken.returncode == 2, taken.stderr
        assert taken.stderr.startswith(f"opsloop: OPSLOOP_METRICS_PORT: port {port} on ")
        assert len(taken.stderr.strip().splitlines()) == 1
        assert serve.terminate() == 0, serve.output()
