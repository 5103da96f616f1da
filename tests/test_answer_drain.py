"""A graceful stop and the pass an answer makes in its own transaction (resuming.py)."""

from __future__ import annotations

import threading

import pytest
import sqlalchemy as sa

from orchestrator.clock import FakeClock
from orchestrator.queries import open_interactions
from storage.engine import create_engine
from storage.schema import setup
from tests.orchestrators import running
from tests.polling import until
from tests.sample_workflows import GATED


@pytest.mark.postgres
def test_a_drain_waits_for_the_pass_made_in_an_answers_transaction(pg_url: str) -> None:
    """A gate's answer makes the run's next pass in its transaction, which claims the step
    after the gate. drain() did not count that pass: it said nothing was left running
    while the pass was about to commit, and the step it claimed then started after the
    drain (or, the pool shut down, was left `running` for recovery to question)."""
    engine = create_engine(pg_url)
    setup(engine)
    try:
        with running(engine, GATED, clock=FakeClock()) as orch:
            run_id = orch.start_run("gated", {"service": "api"}, started_by="U0OPS")
            assert orch.wait(run_id, 30).status == "waiting"
            [gate] = open_interactions(engine, run_id)
            blocker = engine.connect()
            tx = blocker.begin()  # holds `ship`'s row: the answer's pass waits to claim it
            blocker.execute(sa.text("SELECT 1 FROM step_run WHERE run_id = :r AND "
                                    "step_id = 'ship' FOR UPDATE"), {"r": run_id})  # fmt: skip
            answered = threading.Thread(target=orch.decide, args=(gate.id, "U0BOSS", "approve"))
            answered.start()
            drained: list[bool] = []
            drainer = threading.Thread(target=lambda: drained.append(orch.drain(60)))
            try:
                until(lambda: _waiting_on_steps(engine),
                      what="the answer's pass to wait for the step's row")  # fmt: skip
                drainer.start()
                drainer.join(0.2)
                assert drainer.is_alive(), "the drain ended while the answer's pass was open"
            finally:
                tx.rollback()
                blocker.close()
                answered.join(30)
                if drainer.ident is not None:
                    drainer.join(60)
            assert drained == [True]
            run = orch.view(run_id)  # what it claimed ran and was recorded before the drain ended
            assert (run.step("approve").status, run.step("ship").status) == (
                "succeeded", "succeeded")  # fmt: skip
    finally:
        engine.dispose()


def _waiting_on_steps(engine: sa.Engine) -> int:
    """Backends waiting for a row lock to update step rows (a fresh statistics snapshot)."""
    with engine.connect() as conn:
        return conn.execute(sa.text(
            "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
            "AND query LIKE '%UPDATE step_run%'")).scalar_one()  # fmt: skip
