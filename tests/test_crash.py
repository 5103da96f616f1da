"""kill -9 at many points of real runs; a new process recovers, and nothing done runs again.

A worker process (tests/crash_worker.py) drives runs of CRASHY one after the other;
every python step appends "<run>/<step>/start" and ".../done" to an effects file.
The test kills the worker with SIGKILL a few lines after it started (and a few
milliseconds after that line), both drawn from a seeded RNG, so the kills land all
over a run: inside a step, between a step and its checkpoint, between the checkpoint
and the step's row, while the next steps start, around the gate and its answer. It
records what the database says was finished at that instant and starts a new worker
on the same database, which recovers and goes on.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import BinaryIO

import sqlalchemy as sa

from orchestrator import runs
from orchestrator.stepgraph import StepGraph
from storage.checkpointer import SQLModelSaver
from storage.engine import create_engine, read_transaction
from storage.schema import setup

WORKER = Path(__file__).with_name("crash_worker.py")
CRASHY = """
name: crashy
steps:
  - id: prepare
    python: engine_tasks:effect
  - id: left
    needs: [prepare]
    idempotent: true
    python: engine_tasks:effect
  - id: right
    needs: [prepare]
    python: engine_tasks:effect
  - id: approve
    needs: [prepare]
    approval:
      message: ship it?
      approvers: {users: [UAPPROVER]}
  - id: ship
    needs: [left, right, approve]
    python: engine_tasks:effect
  - id: notify
    needs: [ship]
    idempotent: true
    python: engine_tasks:effect
"""
IDEMPOTENT = {"left", "notify"}
NOT_IDEMPOTENT = {"prepare", "right", "ship"}
PYTHON_STEPS = IDEMPOTENT | NOT_IDEMPOTENT
RUNS = 12
KILLS = 22
SEED = 20261121
MAX_LINES_PER_LIFE = 8  # a run writes 10 lines when nothing runs twice
MAX_JITTER_S = 0.02
POLL_S = 0.001
WORKER_TIMEOUT_S = 60.0


def _lines(path: Path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []


def _finished_steps(engine: sa.Engine) -> set[tuple[str, str]]:
    """(run, step) pairs whose success is persisted: the step row, or its finished thread."""
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


def _kill_at(proc: subprocess.Popen, effects: Path, target: int, jitter_s: float) -> bool:
    """SIGKILL the worker `jitter_s` after the effects file has `target` lines.

    False if the worker finished first.
    """
    deadline = time.monotonic() + WORKER_TIMEOUT_S
    while len(_lines(effects)) < target:
        if proc.poll() is not None:
            return False
        assert time.monotonic() < deadline, f"the worker wrote no line {target} in time"
        time.sleep(POLL_S)
    time.sleep(jitter_s)  # not a wait for something: it picks the instant of the kill
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    return True


def _start_worker(db_url: str, workflow: Path, effects: Path, log: BinaryIO) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, str(WORKER), db_url, str(workflow), str(effects), str(RUNS)],
        stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip


def test_kill_9_anywhere_then_recover_finishes_every_run_without_repeating_done_work(
    db_url: str, tmp_path: Path
) -> None:
    workflow, effects, log = tmp_path / "crashy.yml", tmp_path / "effects.log", tmp_path / "w.log"
    workflow.write_text(CRASHY)
    engine = create_engine(db_url)
    setup(engine)
    # (run, step) -> how many effect lines existed when its success was seen persisted
    persisted: dict[tuple[str, str], int] = {}
    rng = random.Random(SEED)
    kills = 0
    with log.open("ab") as out:
        proc = None
        try:
            while kills < KILLS:
                target = len(_lines(effects)) + rng.randint(1, MAX_LINES_PER_LIFE)
                proc = _start_worker(db_url, workflow, effects, out)
                if not _kill_at(proc, effects, target, rng.uniform(0, MAX_JITTER_S)):
                    break
                kills += 1
                seen = len(_lines(effects))
                for key in _finished_steps(engine):
                    persisted.setdefault(key, seen)
            proc = _start_worker(db_url, workflow, effects, out)
            code = proc.wait(timeout=WORKER_TIMEOUT_S)
        finally:
            if proc is not None and proc.poll() is None:
                proc.kill()
                proc.wait()
    assert code == 0, log.read_text()
    assert kills >= 20, f"only {kills} kills: the runs ended too early"

    lines = _lines(effects)
    _assert_done_work_never_repeats(lines, persisted)
    _assert_only_answered_recoveries_rerun(engine, lines)
    _assert_database_is_consistent(engine)
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
            sa.select(runs.INTERACTIONS.c.run_id, runs.INTERACTIONS.c.step_id,
                      runs.INTERACTIONS.c.answer, runs.INTERACTIONS.c.answered_by)
            .where(runs.INTERACTIONS.c.purpose == "recovery")
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


def _assert_database_is_consistent(engine: sa.Engine) -> None:
    graph = StepGraph(SQLModelSaver(engine))
    with read_transaction(engine) as conn:
        run_rows = conn.execute(sa.select(runs.RUNS.c.id, runs.RUNS.c.status)).all()
        step_rows = conn.execute(sa.select(runs.STEPS)).mappings().all()
        interactions = conn.execute(sa.select(runs.INTERACTIONS)).mappings().all()
    assert len(run_rows) == RUNS
    assert {status for _, status in run_rows} == {"succeeded"}
    for row in step_rows:
        assert row["status"] == "succeeded", dict(row)
        assert row["finished_at"] is not None
        state, outputs = graph.inspect(row["thread_id"])
        assert state == "finished" and outputs == row["outputs"]
        if row["step_id"] in PYTHON_STEPS:
            assert row["outputs"] == {"step": row["step_id"]}
        else:
            assert row["outputs"]["approved_by"] == ["UAPPROVER"]
    assert all(i["status"] != "pending" for i in interactions)
    gates = Counter(i["run_id"] for i in interactions if i["purpose"] == "gate")
    assert gates == dict.fromkeys(gates, 1) and len(gates) == RUNS  # one question per gate
