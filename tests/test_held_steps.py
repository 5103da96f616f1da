"""Steps resumed outside a pass (an answer, recovery) beside their workflow's share of the
workers (issue 16): one that waits for room survives a crash as a step that had not
started again, and a graceful stop waits for those running as for any other step."""

from __future__ import annotations

import subprocess
import sys
import threading
import uuid
from pathlib import Path
from typing import Any

import ask_tasks
import sqlalchemy as sa

from orchestrator import runs
from orchestrator.clock import utcnow
from orchestrator.engine import Orchestrator
from orchestrator.queries import open_interactions, run_view
from orchestrator.step_limits import StepLimits
from orchestrator.workflow.loader import parse_workflow
from storage.engine import read_transaction
from tests.orchestrators import running
from tests.polling import until

ROOT = Path(__file__).resolve().parent.parent
TWO_ASKS = """
name: two-asks
params:
  effects: {type: string, required: true}
  release: {type: string, required: true}
steps:
  - id: first
    python: ask_tasks:ask_then_hold
  - id: second
    python: ask_tasks:ask_then_hold
"""
# Share 1: answers `first` (it runs on past its answer and holds the share), then
# `second`, which waits for room; says so in the file `answered`, then waits to be killed.
ANSWERER = """
import sys, time
sys.path[:0] = [sys.argv[3], sys.argv[4]]
from orchestrator.engine import Orchestrator
from orchestrator.queries import open_interactions
from orchestrator.step_limits import StepLimits
from orchestrator.workflow.loader import parse_workflow
from storage.engine import create_engine
from tests.polling import until
db_url, text, _, _, effects, release, answered = sys.argv[1:]
orch = Orchestrator(create_engine(db_url), {"two-asks": parse_workflow(text)}, max_workers=4,
                    limits=StepLimits(workflow_workers=1))
orch.start(recover=False)
run_id = orch.start_run("two-asks", {"effects": effects, "release": release},
                        started_by="URUN")
asked = until(lambda: {q.step_id: q.id for q in open_interactions(orch.engine, run_id)}
              if len(open_interactions(orch.engine, run_id)) == 2 else None, timeout=60)
orch.decide(asked["first"], "UBOSS", "approve")
until(lambda: "first/after" in open(effects).read(), timeout=60)
orch.decide(asked["second"], "UBOSS", "approve")
open(answered, "w").write(run_id)
time.sleep(120)  # killed by the test long before
"""


def test_an_answered_step_waiting_for_room_is_resumed_after_a_crash_not_questioned(
    engine: sa.Engine, db_url: str, tmp_path: Path
) -> None:
    """`second` was answered while `first` held its workflow's one worker: it waited,
    `running` in the database, and a SIGKILL then made recovery ask whether to run it
    again, although none of its code had run after its answer."""
    effects, release, answered = tmp_path / "effects", tmp_path / "release", tmp_path / "ok"
    effects.touch()
    worker = subprocess.Popen([
        sys.executable, "-c", ANSWERER, db_url, TWO_ASKS, str(ROOT), str(ROOT / "tests"),
        str(effects), str(release), str(answered),
    ])  # fmt: skip
    try:
        until(lambda: answered.exists() and answered.read_text(), timeout=90,
              what="both answers, the second waiting for room")  # fmt: skip
    finally:
        worker.kill()  # SIGKILL while `first` runs on and `second` waits for room
        worker.wait()
    run_id = answered.read_text()
    assert run_view(engine, run_id).step("second").status == "running"  # claimed, waiting
    assert "second/after" not in effects.read_text()
    workflows = {"two-asks": parse_workflow(TWO_ASKS)}
    o = Orchestrator(engine, workflows, max_workers=4, limits=StepLimits(workflow_workers=1))
    try:
        o.start()  # recovery
        until(lambda: "second/after" in effects.read_text(), timeout=30,
              what="the held step to resume with its answer")  # fmt: skip
        questions = open_interactions(engine, run_id)
        # `first` ran on past its answer: that one is a person's call, as before.
        assert [(q.step_id, "not marked idempotent" in q.prompt) for q in questions] == [
            ("first", True)
        ]
        assert effects.read_text().splitlines() == ["first/after", "second/after"]
    finally:
        release.touch()
        o.close()


ONE_ASK = "name: one-ask\nparams:\n  key: {type: string, required: true}\nsteps:\n" + (
    "  - id: a\n    python: ask_tasks:ask_then_hold_worker\n"
)


def test_a_drain_waits_for_a_step_resumed_by_an_answer(engine: sa.Engine) -> None:
    """A step resumed by an answer runs on the pool outside any pass: drain() did not
    count it, said all had ended while it ran, and gave up its lease (another replica
    could take it over and run it a second time)."""
    key = uuid.uuid4().hex
    ask_tasks.RELEASE[key] = threading.Event()
    with running(engine, ONE_ASK, max_workers=4) as orch:
        run_id = orch.start_run("one-ask", {"key": key}, started_by="U0RUN")
        try:
            (question,) = until(lambda: open_interactions(engine, run_id), what="the question")
            orch.decide(question.id, "U0OPS", "approve")
            until(lambda: ask_tasks.PAST_ANSWER.get(key) == 1, what="the step to resume")
            assert orch.drain(0.1) is False  # it still runs
            assert (run_id, "a") in orch.running_steps()
            with read_transaction(engine) as conn:
                lease = conn.execute(
                    sa.select(runs.STEPS.c.lease_until).where(
                        runs.STEPS.c.run_id == run_id, runs.STEPS.c.step_id == "a"
                    )
                ).scalar_one()
            assert lease > utcnow()  # kept while it runs here
        finally:
            ask_tasks.RELEASE[key].set()


TWO_WORKERS = "name: two-workers\nparams:\n  key: {type: string, required: true}\nsteps:\n" + (
    "".join(f"  - id: {s}\n    python: ask_tasks:ask_then_hold_worker\n" for s in "ab")
)


def test_a_held_step_loses_its_mark_before_its_code_runs(engine: sa.Engine) -> None:
    """The mark says "not started again": left on a step whose code then ran, a crash
    would resume it past its answer a second time with nobody asked."""
    key = uuid.uuid4().hex
    ask_tasks.RELEASE[key] = threading.Event()
    limits = StepLimits(workflow_workers=1)
    with running(engine, TWO_WORKERS, max_workers=4, limits=limits) as orch:
        run_id = orch.start_run("two-workers", {"key": key}, started_by="U0RUN")
        try:
            asked = _answer_both(orch, engine, run_id, key)
            assert _held(engine, run_id) == {asked[1].step_id}  # waits for room, marked
        finally:
            ask_tasks.RELEASE[key].set()
        until(lambda: ask_tasks.STARTED.get(key) == 2, what="the held step to run on")
        assert _held(engine, run_id) == set()
        assert orch.wait(run_id, 30).status == "succeeded"


def _answer_both(orch: Orchestrator, engine: sa.Engine, run_id: str, key: str) -> list[Any]:
    """Answer both questions of TWO_WORKERS, the second once the first runs on: with a
    share of one worker, the second waits for room. The questions, in order."""
    asked = until(lambda: len(q := open_interactions(engine, run_id)) == 2 and q,
                  what="both questions")  # fmt: skip
    orch.decide(asked[0].id, "U0OPS", "approve")
    until(lambda: ask_tasks.STARTED.get(key) == 1, what="the first to run on")
    orch.decide(asked[1].id, "U0OPS", "approve")
    return asked


def _held(engine: sa.Engine, run_id: str) -> set[str]:
    steps = runs.STEPS
    with read_transaction(engine) as conn:
        rows = conn.execute(
            sa.select(steps.c.step_id).where(steps.c.run_id == run_id, steps.c.held_at.is_not(None))
        )
        return {row[0] for row in rows}


def test_a_step_held_at_a_graceful_stop_resumes_at_the_next_start_with_no_question(
    engine: sa.Engine,
) -> None:
    """SIGTERM while an answered step waits for room: it does not start, its lease goes,
    and the next start resumes it with its answer (it had not run on: no question)."""
    key = uuid.uuid4().hex
    ask_tasks.RELEASE[key] = threading.Event()
    limits = StepLimits(workflow_workers=1)
    with running(engine, TWO_WORKERS, max_workers=4, limits=limits) as orch:
        run_id = orch.start_run("two-workers", {"key": key}, started_by="U0RUN")
        try:
            _answer_both(orch, engine, run_id, key)
            orch.drain(0.1)
        finally:
            ask_tasks.RELEASE[key].set()
        # Ended before the process exits: it gives its lease up (the next start takes it).
        until(lambda: not orch.running_steps(), what="the running step to end")
    assert ask_tasks.STARTED[key] == 1
    with running(engine, TWO_WORKERS, max_workers=4, limits=limits, recover=True) as orch:
        assert orch.wait(run_id, 30).status == "succeeded"
        assert ask_tasks.STARTED[key] == 2 and open_interactions(engine, run_id) == []


def _refuse_unholding(engine: sa.Engine) -> None:
    """Clearing a held step's mark fails (not a passing failure: not retried)."""
    with engine.begin() as conn:
        if engine.dialect.name == "sqlite":
            conn.execute(sa.text(
                "CREATE TRIGGER refuse_unhold BEFORE UPDATE ON step_run "
                "WHEN OLD.held_at IS NOT NULL AND NEW.held_at IS NULL "
                "BEGIN SELECT RAISE(ABORT, 'refused'); END"))  # fmt: skip
            return
        conn.execute(sa.text(
            "CREATE FUNCTION refuse_unhold() RETURNS trigger AS $$ BEGIN "
            "IF OLD.held_at IS NOT NULL AND NEW.held_at IS NULL "
            "THEN RAISE EXCEPTION 'refused'; END IF; RETURN NEW; END $$ LANGUAGE plpgsql; "
            "CREATE TRIGGER refuse_unhold BEFORE UPDATE ON step_run "
            "FOR EACH ROW EXECUTE FUNCTION refuse_unhold()"))  # fmt: skip


def test_a_drain_ends_after_a_held_step_failed_to_start(engine: sa.Engine) -> None:
    """A held step whose start raised (storage refused to clear its mark) counted as
    ending for good: every later drain() waited out its whole timeout and said steps
    were left running, though none ran. It stays held in the database, for recovery."""
    key = uuid.uuid4().hex
    ask_tasks.RELEASE[key] = threading.Event()
    limits = StepLimits(workflow_workers=1)
    with running(engine, TWO_WORKERS, max_workers=4, limits=limits) as orch:
        run_id = orch.start_run("two-workers", {"key": key}, started_by="U0RUN")
        try:
            asked = _answer_both(orch, engine, run_id, key)
            assert _held(engine, run_id) == {asked[1].step_id}
            _refuse_unholding(engine)
        finally:
            ask_tasks.RELEASE[key].set()
        until(lambda: not orch.running_steps(), what="the first to end, the held one to fail")
        assert orch.drain(10) is True
        assert _held(engine, run_id) == {asked[1].step_id}  # left to recovery
        assert ask_tasks.STARTED.get(key) == 1
