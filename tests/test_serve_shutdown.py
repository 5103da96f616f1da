"""`opsloop serve` as a real process: a graceful SIGTERM, refusals at start, and logs
that never print a secret.

SIGTERM comes with every deploy. A non-idempotent step that is still running when it
arrives, and ends within OPSLOOP_SHUTDOWN_GRACE, must be recorded by the stopping bot
(once), so the next start has nothing to ask anybody about. Before graceful stops the
signal killed the step, and the restart asked "retry, skip or fail?".
"""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
from pathlib import Path

import sqlalchemy as sa

from orchestrator.interactions import INTERACTIONS
from orchestrator.queries import run_view
from tests.polling import until
from tests.sample_workflows import workflow_dir
from tests.serve_process import ROOT, serve_env, serving, stop
from tests.slack_double import SlackDouble
from tests.test_serve_restart import fragile_workflow

SIGNING = "0123456789abcdef-signing-secret"


def two_steps(started: Path, release: Path) -> str:
    """`migrate` (not idempotent, blocks until `release`), then `announce`."""
    return (
        fragile_workflow(started, release)
        + """
  - id: announce
    needs: migrate
    shell: ["true"]
"""
    )


def test_sigterm_lets_a_running_step_finish_and_the_restart_asks_nobody(
    db_url: str, tmp_path: Path
) -> None:
    started, release = tmp_path / "started", tmp_path / "release"
    flows = workflow_dir(tmp_path, {"fragile": two_steps(started, release)})
    env = {"OPSLOOP_SHUTDOWN_GRACE": "20"}
    try:
        with SlackDouble() as slack:
            with serving(slack, db_url, flows, tmp_path / "first.log", env) as first:
                first.slack.wait_for_ack(first.command("run fragile"))
                run_id = first.run_id()
                until(started.exists, what="the step's process to start")
                first.process.send_signal(signal.SIGTERM)
                until(lambda: "stopping: no new commands" in first.output()
                      or first.process.poll() is not None,
                      what="the bot to start stopping")  # fmt: skip
                assert first.process.poll() is None, "it did not wait for the running step"
                release.touch()  # the step ends within the grace period
                assert first.process.wait(30) == 0, first.output()
                steps = {s.step_id: s.status for s in run_view(first.engine, run_id).steps}
                assert steps == {"migrate": "succeeded", "announce": "pending"}, steps

            with serving(slack, db_url, flows, tmp_path / "second.log") as second:
                until(lambda: second.status(run_id) == "succeeded", what="the run to finish")
                assert started.read_text().count("x") == 1, "the step ran twice"
                with second.engine.connect() as conn:
                    asked = conn.execute(sa.select(sa.func.count()).select_from(INTERACTIONS))
                    assert asked.scalar() == 0, "somebody was asked about the step"
    finally:
        release.touch()


def test_a_full_run_of_serve_in_json_prints_no_secret(db_url: str, tmp_path: Path) -> None:
    hello = 'name: hello\nsteps:\n  - id: hi\n    shell: ["sh", "-c", "echo hi; exit 3"]\n'
    flows = workflow_dir(tmp_path, {"hello": hello})
    password = "pw-do-not-print-7731"
    url = db_url.replace("postgres@", f"postgres:{password}@")  # trust auth ignores it
    env = {"OPSLOOP_LOG_FORMAT": "json", "OPSLOOP_LOG_LEVEL": "DEBUG",
           "SLACK_SIGNING_SECRET": SIGNING}  # fmt: skip
    with SlackDouble() as slack:
        with serving(slack, url, flows, tmp_path / "bot.log", env) as served:
            served.slack.wait_for_ack(served.command("run hello"))
            run_id = served.run_id()
            until(lambda: served.status(run_id) == "failed", what="the run to fail")
            assert stop(served.process) == 0
        printed = served.output()
        for secret in (slack.token, slack.app_token, SIGNING, password):
            assert secret not in printed, f"{secret[:6]}... was printed"
        lines = [json.loads(line) for line in printed.splitlines() if line.strip()]  # all JSON
        assert all({"time", "level", "logger", "message"} <= line.keys() for line in lines)
        assert any(line.get("run_id") == run_id and line.get("step_id") == "hi"
                   for line in lines), printed  # fmt: skip


def _serve(env: dict[str, str], tmp_path: Path) -> subprocess.CompletedProcess[str]:
    flows = workflow_dir(tmp_path, {})
    env = serve_env(f"sqlite:///{tmp_path / 'db.sqlite'}", flows,
                    {"SLACK_SIGNING_SECRET": SIGNING, "HOST": "127.0.0.1", **env})  # fmt: skip
    return subprocess.run([sys.executable, "-m", "bot.cli", "serve"], cwd=ROOT, text=True,
                          capture_output=True, env=env, timeout=60)  # fmt: skip


def test_a_port_in_use_is_one_line_and_exit_2(tmp_path: Path) -> None:
    with SlackDouble() as slack, socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        done = _serve({"SLACK_BOT_TOKEN": slack.token, "SLACK_API_URL": slack.api_url,
                       "PORT": str(port)}, tmp_path)  # fmt: skip
    assert done.returncode == 2, done.stderr
    assert done.stderr.strip().splitlines() == [  # before anything starts: nothing else
        f"opsloop: port {port} on 127.0.0.1 is already in use (another opsloop serve?); stop "
        "what listens there or choose another with PORT or --port"
    ]


def test_a_refused_bot_token_is_one_line_and_exit_2(tmp_path: Path) -> None:
    with SlackDouble() as slack:
        done = _serve({"SLACK_BOT_TOKEN": "xoxb-not-the-right-one", "PORT": "0",
                       "SLACK_API_URL": slack.api_url}, tmp_path)  # fmt: skip
        assert slack.calls("auth.test", ok=False)
    assert done.returncode == 2, done.stderr
    [line] = [line for line in done.stderr.splitlines() if line.startswith("opsloop:")]
    assert "Traceback" not in done.stderr
    assert line.startswith("opsloop: Slack refused SLACK_BOT_TOKEN (invalid_auth)"), line
    assert "xoxb-not-the-right-one" not in done.stdout + done.stderr
