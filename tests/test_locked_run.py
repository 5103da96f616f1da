"""The run as the answer's transaction reads it: one statement on PostgreSQL, the same view
as `runs.load_run(lock=True)`, and the run's row locked until that transaction ends; with
the question too, when the answer's first try reads it there (answer_reads.py)."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from orchestrator import runs
from orchestrator.answer_reads import read_asked, read_question
from orchestrator.clock import FakeClock
from orchestrator.interactions import load_interaction
from orchestrator.locked_run import load_locked
from orchestrator.queries import open_interactions
from storage.engine import create_engine, write_transaction
from storage.schema import setup
from tests.orchestrators import running
from tests.sample_workflows import GATED


def test_it_reads_the_run_as_load_run_does(engine: sa.Engine) -> None:
    with running(engine, GATED, clock=FakeClock()) as orch:
        run_id = orch.start_run("gated", {"service": "api"}, started_by="U0OPS")
        assert orch.wait(run_id, 30).status == "waiting"
        with write_transaction(engine) as conn:
            ours = load_locked(conn, run_id)
            theirs = runs.load_run(conn, run_id, lock=True)
            assert load_locked(conn, "r-nosuchrun") is None
    assert ours == theirs
    assert ours is not None and ours.step("build").outputs  # parsed, with its times
    assert [s.step_id for s in ours.steps] == ["build", "approve", "ship"]


@pytest.mark.postgres
def test_it_locks_the_runs_row_and_no_step_row(pg_url: str) -> None:
    pg_engine = create_engine(pg_url)
    setup(pg_engine)
    with running(pg_engine, GATED, clock=FakeClock()) as orch:
        run_id = orch.start_run("gated", {"service": "api"}, started_by="U0OPS")
        assert orch.wait(run_id, 30).status == "waiting"
        [gate] = open_interactions(pg_engine, run_id)
        with write_transaction(pg_engine) as conn:
            assert load_locked(conn, run_id) is not None
            with pg_engine.connect() as other:
                other.execute(sa.text("SET lock_timeout = '50ms'"))
                with pytest.raises(sa.exc.OperationalError, match="lock timeout"):
                    other.execute(sa.text("SELECT 1 FROM workflow_run WHERE id = :r FOR UPDATE"),
                                  {"r": run_id})  # fmt: skip
                other.rollback()
                steps = other.execute(sa.text(
                    "SELECT step_id FROM step_run WHERE run_id = :r FOR UPDATE NOWAIT"
                ), {"r": run_id}).all()  # fmt: skip
                assert len(steps) == 3
                other.rollback()
        orch.decide(gate.id, "U0BOSS", "approve")
        assert orch.wait(run_id, 30).status == "succeeded"
    pg_engine.dispose()


@pytest.mark.postgres
def test_the_answers_read_is_the_question_and_the_run_as_read_apart(pg_url: str) -> None:
    """answer_reads.read_asked: the question, its run and its step's newest checkpoint in
    one statement, each as its own read gives it, the run's row locked."""
    pg_engine = create_engine(pg_url)
    setup(pg_engine)
    with running(pg_engine, GATED, clock=FakeClock()) as orch:
        run_id = orch.start_run("gated", {"service": "api"}, started_by="U0OPS")
        assert orch.wait(run_id, 30).status == "waiting"
        [gate] = open_interactions(pg_engine, run_id)
        with write_transaction(pg_engine) as conn:
            asked = read_asked(conn, gate.id)
            alone = read_question(conn, gate.id)
            assert asked is not None and alone is not None
            assert asked.run == runs.load_run(conn, run_id)
            assert asked.row == dict(load_interaction(conn, gate.id) or {}) == alone.row
            assert asked.head_row.checkpoint_id == alone.head_row.checkpoint_id
            assert read_asked(conn, "i-nosuchthing") is None
            with pg_engine.connect() as other:
                other.execute(sa.text("SET lock_timeout = '50ms'"))
                with pytest.raises(sa.exc.OperationalError, match="lock timeout"):
                    other.execute(sa.text("SELECT 1 FROM workflow_run WHERE id = :r FOR UPDATE"),
                                  {"r": run_id})  # fmt: skip
                other.rollback()
    pg_engine.dispose()
