"""kill -9 at many points of real runs; a new process recovers, and nothing done runs again.

A worker process (tests/crash_worker.py) drives runs of CRASHY one after the other;
every step but the gate appends "<run>/<step>/start" and ".../done" to an effects
file. The test kills the worker with SIGKILL a few lines after it started (and a few
milliseconds after that line), both drawn from a seeded RNG, so the kills land all
over a run: inside a step, between a step and its checkpoint, between the checkpoint
and the step's row, while the next steps start, around the gate and its answer. It
records what the database says was finished at that instant and starts a new worker
on the same database, which recovers and goes on.

It runs twice over: with python tasks that take `ctx` (they may pause, so each runs
in its LangGraph thread and its result is checkpointed) and with shell steps (they
cannot pause and run without LangGraph: until the pass that records the result in
the step's row commits, a kill leaves them unfinished, to re-run or to ask about).
A shell step runs in its own session and outlives its killed worker; the workers are
forked by one server process (crash_worker.py --fork-server) that is their subreaper,
and the test waits for such leftovers before it reads what was done.
"""

from __future__ import annotations

import json
import os
import random
import select
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
import sqlalchemy as sa

from orchestrator import runs
from orchestrator.interactions import INTERACTIONS
from orchestrator.stepgraph import StepGraph
from storage.checkpointer import BLOBS, CHECKPOINTS, WRITES, SQLModelSaver
from storage.engine import create_engine, read_transaction
from storage.schema import setup

WORKER = Path(__file__).with_name("crash_worker.py")
CRASHY = """
name: crashy
env:
  CRASH_TEST_LOG: {from_env: CRASH_TEST_LOG}
steps:
  - id: prepare
    EFFECT
  - id: left
    needs: [prepare]
    idempotent: true
    EFFECT
  - id: right
    needs: [prepare]
    EFFECT
  - id: approve
    needs: [prepare]
    approval:
      message: ship it?
      approvers: {users: [UAPPROVER]}
  - id: ship
    needs: [left, right, approve]
    EFFECT
  - id: notify
    needs: [ship]
    idempotent: true
    EFFECT
"""
# What the five effect steps are: a python task that takes ctx, or a shell step.
CTX_EFFECT = "python: engine_tasks:effect"
SHELL_EFFECT = "shell: " + json.dumps([
    "sh", "-c",
    'key="$OPSLOOP_RUN_ID/$OPSLOOP_STEP_ID"; echo "$key/start" >> "$CRASH_TEST_LOG";'
    ' sleep 0.01; echo "$key/done" >> "$CRASH_TEST_LOG"',
])  # fmt: skip
SHELL_OUTPUTS = {"exit_code": 0, "stdout": "", "stderr": ""}
IDEMPOTENT = {"left", "notify"}
NOT_IDEMPOTENT = {"prepare", "right", "ship"}
EFFECT_STEPS = IDEMPOTENT | NOT_IDEMPOTENT
GATE = "approve"
RUNS = 12
KILLS = 22
SEED = 20261121
MAX_LINES_PER_LIFE = 8  # a run writes 10 lines when nothing runs twice
MAX_JITTER_S = 0.02
POLL_S = 0.001
WORKER_TIMEOUT_S = 60.0
SERVER_TIMEOUT_S = WORKER_TIMEOUT_S + 30  # it imports the orchestrator first


def _lines(path: Path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []


def _finished_steps(engine: sa.Engine) -> set[tuple[str, str]]:
    """(run, step) pairs whose success is persisted: the step row, or its finished thread
    (a shell step has no thread to finish: only its row counts)."""
    graph = StepGraph(SQLModelSaver(engine))
    with read_transaction(engine) as conn:
        rows = conn.execute(
            sa.select(runs.STEPS.c.run_id, runs.STEPS.c.step_id, runs.STEPS.c.status,
                      runs.STEPS.c.thread_id)
        ).all()  # fmt: skip
    return {
        (run_id, step_id)
        for run_id, step_id, status, thread_id in rows
        if status == "succeeded"
        or (status == "running" and thread_id and graph.inspect(thread_id)[0] == "finished")
    }


class Workers:
    """Starts, polls and reaps workers through a crash_worker.py fork server."""

    def __init__(self, db_url: str, workflow: Path, effects: Path, log: Path) -> None:
        self.log = log
        argv = [str(WORKER), "--fork-server", db_url, str(workflow), str(effects), str(RUNS)]
        with log.open("ab") as out:
            self.server = subprocess.Popen(
                [sys.executable, *argv, str(log)], stdin=subprocess.PIPE,
                stdout=subprocess.PIPE, stderr=out, bufsize=0,
            )  # fmt: skip

    def start(self) -> int:
        return int(self._ask("start", SERVER_TIMEOUT_S))

    def poll(self, pid: int) -> int | None:
        reply = self._ask(f"poll {pid}", WORKER_TIMEOUT_S)
        return None if reply == "running" else int(reply)

    def reap(self, pid: int, timeout: float) -> int:
        """The worker's exit status, once it and what it left running have ended."""
        return int(self._ask(f"reap {pid}", timeout))

    def close(self) -> None:
        """Stop the server; it kills the worker still alive, if any."""
        assert self.server.stdin is not None
        self.server.stdin.close()
        try:
            self.server.wait(timeout=30)
        finally:
            if self.server.poll() is None:
                self.server.kill()
                self.server.wait()

    def _ask(self, command: str, timeout: float) -> str:
        assert self.server.stdin is not None and self.server.stdout is not None
        self.server.stdin.write(f"{command}\n".encode())
        deadline, reply = time.monotonic() + timeout, b""
        while not reply.endswith(b"\n"):
            left = deadline - time.monotonic()
            assert left > 0, f"the fork server did not answer {command!r}: {self.log.read_text()}"
            if select.select([self.server.stdout], [], [], left)[0]:
                chunk = os.read(self.server.stdout.fileno(), 4096)
                assert chunk, f"the fork server ended: {self.log.read_text()}"
                reply += chunk
        return reply.decode().strip()


def _kill_at(workers: Workers, pid: int, effects: Path, target: int, jitter_s: float) -> bool:
    """SIGKILL the worker `jitter_s` after the effects file has `target` lines, and wait
    until it and the shell steps it left behind have ended.

    False if the worker finished first.
    """
    deadline = time.monotonic() + WORKER_TIMEOUT_S
    while len(_lines(effects)) < target:
        if workers.poll(pid) is not None:
            return False
        assert time.monotonic() < deadline, f"the worker wrote no line {target} in time"
        time.sleep(POLL_S)
    time.sleep(jitter_s)  # not a wait for something: it picks the instant of the kill
    os.kill(pid, signal.SIGKILL)
    assert workers.reap(pid, timeout=30) == -signal.SIGKILL
    return True


@pytest.mark.parametrize("effect", [pytest.param(CTX_EFFECT, id="ctx"),
                                    pytest.param(SHELL_EFFECT, id="shell")])  # fmt: skip
def test_kill_9_anywhere_then_recover_finishes_every_run_without_repeating_done_work(
    db_url: str, tmp_path: Path, effect: str
) -> None:
    workflow, effects, log = tmp_path / "crashy.yml", tmp_path / "effects.log", tmp_path / "w.log"
    workflow.write_text(CRASHY.replace("EFFECT", effect))
    engine = create_engine(db_url)
    setup(engine)
    # (run, step) -> how many effect lines existed when its success was seen persisted
    persisted: dict[tuple[str, str], int] = {}
    rng = random.Random(SEED)
    kills = 0
    workers = Workers(db_url, workflow, effects, log)
    try:
        while kills < KILLS:
            target = len(_lines(effects)) + rng.randint(1, MAX_LINES_PER_LIFE)
            pid = workers.start()
            if not _kill_at(workers, pid, effects, target, rng.uniform(0, MAX_JITTER_S)):
                break
            kills += 1
            seen = len(_lines(effects))
            for key in _finished_steps(engine):
                persisted.setdefault(key, seen)
        code = workers.reap(workers.start(), timeout=WORKER_TIMEOUT_S + 10)
    finally:
        workers.close()
    assert code == 0, log.read_text()
    assert kills >= 20, f"only {kills} kills: the runs ended too early"

    lines = _lines(effects)
    _assert_done_work_never_repeats(lines, persisted)
    _assert_only_answered_recoveries_rerun(engine, lines)
    _assert_database_is_consistent(engine, shell=effect == SHELL_EFFECT)
    engine.dispose()


def _assert_done_work_never_repeats(
    lines: list[str], persisted: dict[tuple[str, str], int]
) -> None:
    assert len(persisted) >= KILLS  # the kills did find finished work to protect
    for (run_id, step_id), seen in persisted.items():
        again = [line for line in lines[seen:] if line == f"{run_id}/{step_id}/start"]
        assert not again, f"{run_id}/{step_id} ran again after its success was persisted"


def _assert_only_answered_recoveries_rerun(engine: sa.Engine, lines: list[str]) -> None:
    starts = Counter(tuple(line.split("/")[:2]) for line in lines if line.endswith("/start"))
    dones = Counter(tuple(line.split("/")[:2]) for line in lines if line.endswith("/done"))
    with read_transaction(engine) as conn:
        recoveries = conn.execute(
            sa.select(INTERACTIONS.c.run_id, INTERACTIONS.c.step_id,
                      INTERACTIONS.c.answer, INTERACTIONS.c.answered_by)
            .where(INTERACTIONS.c.purpose == "recovery")
        ).all()  # fmt: skip
    retries = Counter((r.run_id, r.step_id) for r in recoveries if r.answer == "retry")
    assert all(r.answered_by == "UOPERATOR" for r in recoveries)
    assert {step for _, step in retries} <= NOT_IDEMPOTENT  # idempotent steps just re-run
    for (run_id, step_id), count in starts.items():
        assert dones[(run_id, step_id)] >= 1
        if step_id in NOT_IDEMPOTENT:
            assert count <= 1 + retries[(run_id, step_id)], (
                f"{run_id}/{step_id} started {count} times with "
                f"{retries[(run_id, step_id)]} answered recovery questions"
            )
    reruns = sum(count - 1 for count in starts.values())
    assert reruns >= 1  # some kills did land inside a step


def _assert_database_is_consistent(engine: sa.Engine, *, shell: bool) -> None:
    graph = StepGraph(SQLModelSaver(engine))
    with read_transaction(engine) as conn:
        run_rows = conn.execute(sa.select(runs.RUNS.c.id, runs.RUNS.c.status)).all()
        step_rows = conn.execute(sa.select(runs.STEPS)).mappings().all()
        interactions = conn.execute(sa.select(INTERACTIONS)).mappings().all()
        threads = {
            thread_id
            for table in (CHECKPOINTS, BLOBS, WRITES)
            for (thread_id,) in conn.execute(sa.select(table.c.thread_id).distinct())
        }
    assert len(run_rows) == RUNS
    assert {status for _, status in run_rows} == {"succeeded"}
    for row in step_rows:
        assert row["status"] == "succeeded", dict(row)
        assert row["finished_at"] is not None
        state, outputs = graph.inspect(row["thread_id"])
        if row["step_id"] == GATE:
            assert state == "finished" and outputs == row["outputs"]
            assert row["outputs"]["approved_by"] == ["UAPPROVER"]
        elif shell:  # it ran without LangGraph: its thread id never got a checkpoint
            assert state == "new" and row["thread_id"] not in threads, dict(row)
            assert row["outputs"] == SHELL_OUTPUTS
        else:
            assert state == "finished" and outputs == row["outputs"]
            assert row["outputs"] == {"step": row["step_id"]}
    if shell:  # nor did any execution a kill cut off
        assert {thread_id.split("/")[1] for thread_id in threads} == {GATE}
    assert all(i["status"] != "pending" for i in interactions)
    gates = Counter(i["run_id"] for i in interactions if i["purpose"] == "gate")
    assert gates == dict.fromkeys(gates, 1) and len(gates) == RUNS  # one question per gate
