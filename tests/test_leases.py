"""Replicas on one database: a live replica's steps are left alone, a dead one's are taken over."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import engine_tasks
import pytest
import sqlalchemy as sa

from orchestrator.engine import Orchestrator
from orchestrator.leases import dead_here
from orchestrator.queries import open_interactions
from orchestrator.workflow.loader import parse_workflow
from storage.engine import create_engine
from tests.polling import until
from tests.scraped import collected, value

HELD = """
name: held
params:
  key: {type: string, required: true}
steps:
  - id: slow
    python: engine_tasks:held
    idempotent: true
  - id: after
    needs: slow
    shell: ["true"]
"""


def replica(url: str) -> Orchestrator:
    return Orchestrator(create_engine(url), {"held": parse_workflow(HELD)}, max_workers=4)


def step_row(orch: Orchestrator, run_id: str) -> sa.Row:
    with orch.engine.connect() as conn:
        return conn.execute(sa.text(
            "SELECT status, owner, lease_until FROM step_run WHERE run_id = :r AND step_id = 'slow'"
        ), {"r": run_id}).one()  # fmt: skip


def test_a_second_replica_leaves_a_live_replicas_step_alone(db_url: str, engine) -> None:
    key = uuid.uuid4().hex
    engine_tasks.GATES[key] = threading.Event()
    first, second = replica(db_url), replica(db_url)
    first.start()
    try:
        run_id = first.start_run("held", {"key": key}, started_by="U0OPS")
        until(lambda: engine_tasks.CALLS.get(key) == 1)
        second.start()  # recovery at start, as a new replica does
        second.sweep()
        status, owner, _ = step_row(second, run_id)
        assert (status, owner) == ("running", first.replica)
        assert engine_tasks.CALLS[key] == 1 and open_interactions(second.engine, run_id) == []
        engine_tasks.GATES[key].set()
        assert first.wait(run_id, 30).status == "succeeded"
    finally:
        engine_tasks.GATES[key].set()
        first.close()
        second.close()


def test_a_step_whose_replica_stopped_renewing_is_taken_over_once(db_url: str, engine) -> None:
    key = uuid.uuid4().hex
    engine_tasks.GATES[key] = threading.Event()
    engine_tasks.GATES[key].set()
    # A replica that claimed the step and died before running it: its pool is gone.
    lost = replica(db_url)
    lost.close()  # its timers and its pool: nothing of it runs any more
    lost.start_run("held", {"key": key}, started_by="U0OPS")  # claims the step, runs nothing
    assert key not in engine_tasks.CALLS  # nothing ran it
    run_id = lost.view(next(iter(_run_ids(engine)))).id
    assert step_row(lost, run_id)[:2] == ("running", lost.replica)
    with engine.begin() as conn:  # ...on another host, five minutes ago
        conn.execute(sa.text(
            "UPDATE step_run SET owner = 'elsewhere/1/dead', lease_until = :t "
            "WHERE run_id = :r AND step_id = 'slow'"
        ), {"r": run_id, "t": datetime.now(UTC) - timedelta(minutes=5)})  # fmt: skip
    survivors = [replica(db_url), replica(db_url)]
    takeovers = value(collected(engine), "opsloop_lease_takeovers_total")
    try:
        for orch in survivors:
            orch.start(recover=False)
        threads = [threading.Thread(target=o.sweep) for o in survivors]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        done = until(lambda: (r := survivors[0].view(run_id)).status == "succeeded" and r)
        assert [s.status for s in done.steps] == ["succeeded", "succeeded"]
        assert engine_tasks.CALLS[key] == 1  # exactly one survivor ran it
        assert value(collected(engine), "opsloop_lease_takeovers_total") == takeovers + 1
    finally:
        for orch in survivors:
            orch.close()


def _run_ids(engine) -> list[str]:
    with engine.connect() as conn:
        return [r[0] for r in conn.execute(sa.text("SELECT id FROM workflow_run"))]


def test_a_replica_whose_step_was_taken_over_cannot_record_its_result(
    db_url: str, engine, caplog
) -> None:
    key = uuid.uuid4().hex
    engine_tasks.GATES[key] = threading.Event()
    stalled = replica(db_url)
    stalled.start()
    try:
        run_id = stalled.start_run("held", {"key": key}, started_by="U0OPS")
        until(lambda: engine_tasks.CALLS.get(key) == 1)
        with engine.begin() as conn:  # its lease ran out and another replica took the step
            conn.execute(sa.text(
                "UPDATE step_run SET owner = 'elsewhere/1/new' "
                "WHERE run_id = :r AND step_id = 'slow'"
            ), {"r": run_id})  # fmt: skip
        engine_tasks.GATES[key].set()  # the stalled replica's run of the step now ends
        until(lambda: "taken over by another replica" in caplog.text)
        assert step_row(stalled, run_id)[:2] == ("running", "elsewhere/1/new")
        assert [s.status for s in stalled.view(run_id).steps] == ["running", "pending"]
    finally:
        engine_tasks.GATES[key].set()
        stalled.close()


def test_an_owner_that_died_and_was_not_reaped_is_dead() -> None:
    """A zombie answers signal 0 as a live process does; its steps need not wait out the
    lease (here pid 1 does not reap orphans: such a replica stays a zombie for good)."""
    host = socket.gethostname()
    child = subprocess.Popen(["sleep", "60"])
    try:
        assert not dead_here(f"{host}/{child.pid}/0a1b2c3d")
        child.kill()
        # dead and left unreaped: WNOWAIT looks without collecting the exit status
        until(lambda: os.waitid(os.P_PID, child.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT),
              what="the child to die")  # fmt: skip
        assert dead_here(f"{host}/{child.pid}/0a1b2c3d")
    finally:
        child.kill()
        child.wait()


def test_an_owner_alive_on_a_host_without_proc_is_alive(tmp_path: Path) -> None:
    """Where /proc is missing (macOS, BSD) or hides other users' processes (hidepid=2),
    reading /proc/PID/stat fails with "no such file" for a process that is alive: that
    must not make its steps orphans. Here: a child with an empty tmpfs over /proc (a
    private mount namespace) asks about this test's process, which is alive."""
    probe = tmp_path / "probe.py"
    probe.write_text(
        "import os, socket, sys\n"
        "from orchestrator.leases import dead_here\n"
        "assert not os.path.exists(f'/proc/{os.getpid()}/stat'), 'no /proc expected'\n"
        "print(dead_here(f'{socket.gethostname()}/{sys.argv[1]}/0a1b2c3d'))\n"
    )
    hide = 'mount -t tmpfs none /proc && echo proc-hidden >&2 && exec "$0" "$@"'
    hidden = ["unshare", "--user", "--map-root-user", "--mount", "sh", "-c", hide,
              sys.executable, str(probe), str(os.getpid())]  # fmt: skip
    env = {"PATH": os.environ.get("PATH", ""), "PYTHONPATH": str(Path(__file__).parents[1])}
    try:
        done = subprocess.run(hidden, capture_output=True, text=True, env=env, timeout=60)
    except FileNotFoundError:
        pytest.skip("no unshare(1) here")
    if "proc-hidden" not in done.stderr:  # unshare or mount refused: not the case at hand
        pytest.skip(f"no private mount namespace here: {done.stderr.strip()}")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "False"
