"""A run left `running` whose workflow is gone (file deleted, no stored definition: a run
from before opsloop kept definitions): `opsloop resume` says which run and what to do,
exit 2, instead of waiting for it forever; `serve` goes on serving beside it; and the run
can still be cancelled. Real processes: the run's own `opsloop run` is killed mid-step."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from tests.polling import until
from tests.serve_process import serving_headless

ROOT = Path(__file__).resolve().parent.parent
VANISH = """
name: vanish
steps:
  - id: work
    shell: [sleep, "600"]
  - id: after
    needs: [work]
    shell: ["true"]
"""


def opsloop(env: dict[str, str], *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "bot.cli", *args], env=env, cwd=ROOT,
                          capture_output=True, text=True, timeout=timeout)  # fmt: skip


def rows(engine: sa.Engine) -> list[Any]:
    """Every run and step row as stored, for a before/after comparison."""
    with engine.connect() as conn:
        found = conn.execute(sa.text("SELECT * FROM workflow_run ORDER BY id")).all()
        steps = conn.execute(sa.text("SELECT * FROM step_run ORDER BY run_id, step_id")).all()
    return [tuple(r) for r in [*found, *steps]]


def working(engine: sa.Engine) -> str | None:
    """The run whose step `work` is running, if any."""
    with engine.connect() as conn:
        query = "SELECT run_id FROM step_run WHERE step_id = 'work' AND status = 'running'"
        return conn.execute(sa.text(query)).scalar()


def sweeps(engine: sa.Engine) -> Any:
    """When `serve` last swept (each sweep marks its replica alive)."""
    with engine.connect() as conn:
        return conn.execute(sa.text("SELECT max(seen_at) FROM replica")).scalar()


def test_resume_names_a_run_whose_workflow_is_gone_and_serve_serves_on(
    db_url: str, engine: sa.Engine, tmp_path: Path
) -> None:
    flows = tmp_path / "workflows"
    flows.mkdir()
    (flows / "vanish.yml").write_text(VANISH)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "OPSLOOP_"))}
    env.update(DATABASE_URL=db_url, OPSLOOP_WORKFLOWS=str(flows), OPSLOOP_USER="U0OPS")
    run = subprocess.Popen([sys.executable, "-m", "bot.cli", "run", "vanish"], env=env, cwd=ROOT,
                           stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                           start_new_session=True)  # fmt: skip
    try:
        run_id = until(lambda: working(engine), timeout=60, what="the step to be running")
    finally:
        os.killpg(run.pid, signal.SIGKILL)  # the CLI and its `sleep`: a crash
        run.communicate(timeout=30)
    (flows / "vanish.yml").unlink()
    with engine.begin() as conn:
        conn.execute(sa.text("DELETE FROM workflow_definition"))
    before = rows(engine)

    resumed = opsloop(env, "resume")  # it waited for the run forever

    assert resumed.returncode == 2, resumed.stderr
    said = resumed.stderr
    assert f"run {run_id} (workflow vanish) cannot continue" in said, said
    assert "restore" in said and f"opsloop cancel {run_id}" in said, said
    assert rows(engine) == before  # nothing changed, nothing half-done

    env.update(OPSLOOP_CLOCK_SPEED="30")  # a sweep every second
    with serving_headless(env, tmp_path / "serve.log") as serve:
        seen = until(lambda: sweeps(engine), timeout=60, what="serve's first sweep")
        for _ in range(3):
            seen = until(lambda s=seen: (t := sweeps(engine)) and t > s and t, timeout=60,
                         what="serve's next sweep")  # fmt: skip
        assert serve.process.poll() is None, serve.output()
        assert serve.terminate() == 0, serve.output()
    err = serve.output()
    assert err.count(f"run {run_id} (workflow vanish) cannot continue") == 1, err  # not each sweep
    assert rows(engine) == before

    retried = opsloop(env, "retry", run_id)  # refused, saying what to do
    assert retried.returncode != 0
    assert f"run {run_id} cannot be retried" in retried.stderr, retried.stderr
    assert "restore the workflow file" in retried.stderr and "docs/operations.md" in retried.stderr
    assert rows(engine) == before

    cancelled = opsloop(env, "cancel", run_id)  # what the message offers works
    assert cancelled.returncode == 0, cancelled.stderr
    with engine.connect() as conn:
        statuses = dict(conn.execute(sa.text("SELECT step_id, status FROM step_run")).all())
        status = conn.execute(sa.text("SELECT status FROM workflow_run")).scalar()
    assert status == "cancelled" and statuses == {"work": "cancelled", "after": "cancelled"}
