"""Edges a review found in the report roll-up and stored definitions: writers stalled
behind a roll-up's lock, a run nobody could cancel, and read transactions that were not
one snapshot on PostgreSQL. (Its escalation edge is in test_reconciler.py.)"""

from __future__ import annotations

import threading
from datetime import date

import pytest
import sqlalchemy as sa

from orchestrator.errors import DefinitionError
from orchestrator.reports import rollup
from storage.engine import create_engine, read_transaction, write_transaction
from storage.schema import setup
from tests.orchestrators import running
from tests.polling import until
from tests.sample_workflows import GATED


@pytest.mark.postgres
def test_a_roll_up_does_not_wait_for_writers_and_so_stalls_none(pg_url: str) -> None:
    """A roll-up's SHARE lock request that waited behind an open writer queued every
    later writer of the table (the whole engine) behind it, for up to 2 s. Now it asks
    with NOWAIT: busy, the day is counted live this time and kept by a later report.
    (PostgreSQL's lock queue; SQLite's roll-up is a write transaction like any other.)"""
    engine = create_engine(pg_url)
    setup(engine)
    day = date(2026, 1, 5)
    kept = sa.text("SELECT count(*) FROM report_day WHERE day = :day")
    holder = engine.connect()
    holder.begin()
    holder.execute(sa.text("LOCK TABLE workflow_run IN ROW EXCLUSIVE MODE"))  # an open writer
    report = threading.Thread(target=rollup.ensure, args=(engine, [day]))
    try:
        queued = sa.text(
            "SELECT count(*) FROM pg_locks WHERE relation = "
            "'workflow_run'::regclass AND mode = 'ShareLock' AND NOT granted"
        )
        seen_queued = []
        with engine.connect() as probe:
            report.start()

            def gave_up() -> bool:
                seen_queued.append(probe.execute(queued).scalar_one())
                return not report.is_alive()

            until(gave_up, timeout=60, what="the roll-up to give up instead of waiting")
        assert not any(seen_queued), "the roll-up queued for its lock: every writer waits"
        with engine.connect() as writer, writer.begin():
            writer.execute(sa.text("SET LOCAL statement_timeout = '500ms'"))
            writer.execute(sa.text("UPDATE workflow_run SET status = status WHERE false"))
        with engine.connect() as conn:
            assert conn.execute(kept, {"day": day.isoformat()}).scalar_one() == 0
    finally:
        holder.rollback()
        holder.close()
        report.join(30)
    rollup.ensure(engine, [day])  # the writer is gone: kept now
    with engine.connect() as conn:
        assert conn.execute(kept, {"day": day.isoformat()}).scalar_one() == 3
    engine.dispose()


SIMPLE = """
name: other
steps:
  - id: hi
    shell: ["true"]
"""


def test_a_run_whose_stored_definition_no_longer_parses_can_still_be_cancelled(
    engine: sa.Engine,
) -> None:
    """Services.known_workflow_of turns only UnknownWorkflow into "gone" (None): a run
    whose file is gone and whose stored text this release rejects (an older release's
    language) raises DefinitionError from `cancel`, for its requester and admins alike,
    while `opsloop resume` tells them to `opsloop cancel` it."""
    with running(engine, GATED) as orch:
        run_id = orch.start_run("gated", {"service": "api"}, started_by="U0OPS")
        orch.wait(run_id, 30)
    with engine.begin() as conn:  # the text an older release wrote, which this one rejects
        conn.execute(sa.text("UPDATE workflow_definition SET text = 'name: gated\nsteps: 7'"))
    with running(engine, SIMPLE) as orch:  # gated.yml is gone
        try:
            orch.cancel(run_id, "U0OPS")  # its requester
        except DefinitionError as exc:
            pytest.fail(f"the requester cannot cancel the run: {exc}")
        assert orch.view(run_id).status == "cancelled"


def test_a_read_transaction_is_one_snapshot_on_postgresql_too(engine: sa.Engine) -> None:
    """storage/engine.py read_transaction promises "a consistent snapshot on both
    databases", and build_report relies on it (the kept counts, the live counts and the
    percentile walks, whose OFFSET is the rank from those counts: sql.nth_values). On
    PostgreSQL it is a READ COMMITTED transaction: each statement sees every commit made
    before it, so a step finishing in between shifts the rank (or runs past the end:
    a NULL p95)."""
    count = sa.text("SELECT count(*) FROM report_day")
    with read_transaction(engine) as conn:
        before = conn.execute(count).scalar_one()
        with write_transaction(engine) as other:  # another process's commit meanwhile
            other.execute(sa.text("INSERT INTO report_day VALUES ('2026-01-01', 'runs', '[]')"))
        after = conn.execute(count).scalar_one()
    assert after == before, "the second read saw a commit made after the first"
