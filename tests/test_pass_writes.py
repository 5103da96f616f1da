"""On PostgreSQL a pass sends its step changes with the run's version bump in one
statement (orchestrator/pass_writes.py), and a worker's claim commits itself (no BEGIN,
no COMMIT); a held change that loses makes the pass again."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
import sqlalchemy as sa

from orchestrator import leases, runs, scheduler
from orchestrator.runstate import RunState
from orchestrator.workflow.loader import parse_workflow
from storage.engine import create_engine, read_transaction, write_transaction
from storage.schema import setup
from storage.statuses import StepStatus

CHAIN = """
name: chain
steps:
  - id: a
    shell: ["true"]
  - id: b
    needs: [a]
    shell: ["true"]
  - id: c
    needs: [b]
    shell: ["true"]
"""
WF = parse_workflow(CHAIN)


class Passes:
    """Passes over one run of CHAIN, made as passing.commit_pass makes them."""

    def __init__(self, engine: sa.Engine) -> None:
        self.engine, self.now = engine, datetime.now(UTC)
        self.own = leases.ownership("test-replica", self.now)
        self.run_id = runs.new_run_id()
        with write_transaction(engine) as conn:
            runs.insert_started(conn, WF, self.run_id, {}, "UOPS", "cli", None, None, self.now)

    def once(self, state: RunState | None, outcomes: list[scheduler.Outcome]) -> scheduler.Pass:
        with write_transaction(self.engine) as conn:
            return scheduler.run_pass(
                conn, self.run_id, lambda _run: WF, outcomes, state=state,
                inflight=frozenset, free=4, now=self.now, ownership=self.own,
                new_thread_id=lambda step_id: f"{self.run_id}/{step_id}/t",
            )  # fmt: skip

    def committed(
        self, state: RunState | None, outcomes: list[scheduler.Outcome]
    ) -> scheduler.Pass:
        try:
            return self.once(state, outcomes)
        except scheduler.StaleRun:  # rolled back: again, from a fresh read
            return self.once(None, outcomes)

    def ended(self, step_id: str) -> scheduler.Outcome:
        return scheduler.Outcome(step_id, StepStatus.SUCCEEDED, self.now, None, {"ok": 1})

    def statuses(self) -> dict[str, str]:
        with read_transaction(self.engine) as conn:
            rows = conn.execute(sa.select(runs.STEPS.c.step_id, runs.STEPS.c.status)
                                .where(runs.STEPS.c.run_id == self.run_id))  # fmt: skip
            return {r[0]: r[1] for r in rows}

    def version(self) -> int | None:
        with read_transaction(self.engine) as conn:
            return runs.run_version(conn, self.run_id)


@pytest.mark.postgres
def test_a_chain_steps_pass_is_one_statement_on_postgresql(pg_url: str) -> None:
    """Recording `a`, claiming `b` and raising the version were three round trips before
    the COMMIT; a chain step's pass waited for each (docs/benchmarks.md, session 8)."""
    engine = create_engine(pg_url)
    setup(engine)
    try:
        p = Passes(engine)
        first = p.once(None, [])
        assert [c.step.id for c in first.claimed] == ["a"]
        before = p.version()
        sent: list[str] = []

        def record(_conn: object, _cursor: object, sql: str, *_rest: object) -> None:
            sent.append(sql)

        sa.event.listen(engine, "before_cursor_execute", record)
        second = p.once(first.state, [p.ended("a")])
        sa.event.remove(engine, "before_cursor_execute", record)
        assert len(sent) == 1, sent
        assert [c.step.id for c in second.claimed] == ["b"]
        assert p.statuses() == {"a": "succeeded", "b": "running", "c": "pending"}
        assert p.version() == before + 1
        assert second.state is not None and second.state.version == before + 1
    finally:
        engine.dispose()


def test_a_claim_that_loses_leaves_the_step_to_whoever_won(engine: sa.Engine) -> None:
    """`b` was taken behind the pass's kept state without raising the version (as
    another replica's worker claims a queued step): the pass keeps none of it."""
    p = Passes(engine)
    first = p.once(None, [])
    with write_transaction(engine) as conn:
        assert runs.set_step(conn, p.run_id, "b", expect=["pending"], status="running",
                             thread_id="elsewhere", signal=False)  # fmt: skip
    done = p.committed(first.state, [p.ended("a")])
    assert done.claimed == []
    assert p.statuses() == {"a": "succeeded", "b": "running", "c": "pending"}
    with read_transaction(engine) as conn:
        assert runs.steps_with_threads(conn, p.run_id, ["elsewhere"]) == {"b"}


def test_a_result_whose_step_was_cancelled_meanwhile_is_dropped(engine: sa.Engine) -> None:
    """`a` was cancelled behind the pass's kept state: its result is not recorded, and
    what needs it is skipped instead of started."""
    p = Passes(engine)
    first = p.once(None, [])
    with write_transaction(engine) as conn:
        assert runs.set_step(conn, p.run_id, "a", expect=["running"], status="cancelled",
                             signal=False)  # fmt: skip
    done = p.committed(first.state, [p.ended("a")])
    assert done.dropped == ["a"] and done.claimed == []
    assert p.statuses() == {"a": "cancelled", "b": "skipped", "c": "skipped"}


@pytest.mark.postgres
def test_a_runs_steps_are_inserted_by_one_statement_on_postgresql(pg_url: str) -> None:
    """One INSERT per step cost PostgreSQL a statement per row (85-100 ms of a 2,000-step
    run's start): the step ids go as one array (orchestrator/step_rows.py)."""
    engine = create_engine(pg_url)
    setup(engine)
    sent: list[tuple[str, bool]] = []

    def record(
        _conn: object, _cursor: object, sql: str, _p: object, _c: object, many: bool
    ) -> None:
        sent.append((sql, many))

    sa.event.listen(engine, "before_cursor_execute", record)
    try:
        p = Passes(engine)
        inserts = [(sql, many) for sql, many in sent if sql.startswith("INSERT INTO step_run")]
        assert len(inserts) == 1 and not inserts[0][1], inserts
        assert p.statuses() == {"a": "pending", "b": "pending", "c": "pending"}
    finally:
        sa.event.remove(engine, "before_cursor_execute", record)
        engine.dispose()
