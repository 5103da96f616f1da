"""A dropped database connection mid-run: the transition is tried again and the run finishes."""

from __future__ import annotations

import logging
import uuid
from pathlib import Path

import pytest
import sqlalchemy as sa
from engine_tasks import drop_connections

from orchestrator import interactions
from orchestrator.engine import Orchestrator
from orchestrator.storage_retry import StorageRetry, storage_attempts
from orchestrator.workflow.loader import parse_workflow
from storage.engine import create_engine, read_transaction
from storage.schema import setup
from tests.scraped import collected, value

DROPPY = """
name: droppy
params:
  app: {type: string, required: true}
  dsn: {type: string, required: true}
steps:
  - id: before
    python: engine_tasks:ok
  - id: drop
    needs: [before]
    python: engine_tasks:drop_connections
  - id: gate
    needs: [drop]
    approval:
      message: go on?
  - id: after
    needs: [gate]
    python: engine_tasks:ok
"""


def test_terminated_postgres_backends_mid_run_are_retried(
    pg_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    # Our own application_name, so that only this test's connections are terminated.
    app = f"opsloop-retry-{uuid.uuid4().hex[:8]}"
    engine = create_engine(f"{pg_url}&application_name={app}")
    setup(engine)
    dsn = sa.make_url(pg_url).set(drivername="postgresql", query={})
    params = {"app": app, "dsn": dsn.render_as_string(hide_password=False)}
    orch = Orchestrator(engine, {"droppy": parse_workflow(DROPPY)}, max_workers=4)
    before = value(collected(engine), "opsloop_storage_retries_total")
    orch.start()
    caplog.set_level(logging.WARNING, logger="orchestrator.storage_retry")
    try:
        # 1. The `drop` step terminates every connection of the pool while it runs: its
        #    checkpoint writes and its transition find them dead.
        run_id = orch.start_run("droppy", params, started_by="URUN")
        assert orch.wait(run_id, timeout=30).status == "waiting"
        drop = next(s for s in orch.view(run_id).steps if s.step_id == "drop")
        assert drop.status == "succeeded" and drop.outputs["dropped"] >= 1
        # 2. Again while the run waits at the gate: the answer meets dead connections.
        with read_transaction(engine) as conn:
            (gate,) = interactions.pending_interactions(conn, run_id)
        assert drop_connections(params)["dropped"] >= 1
        orch.decide(gate["id"], "UOPS", "approve")
        run = orch.wait(run_id, timeout=30)
    finally:
        orch.close()
        engine.dispose()
    assert run.status == "succeeded"
    assert {s.status for s in run.steps} == {"succeeded"}
    retried = [r for r in caplog.records if r.name == "orchestrator.storage_retry"]
    assert len(retried) >= 2, "no transition met a dead connection"
    assert all("trying again" in r.getMessage() for r in retried)
    after = value(collected(engine), "opsloop_storage_retries_total")
    assert after - before == len(retried)  # what /metrics exports
    engine.dispose()


def test_a_mistake_is_not_retried(sqlite_url: str) -> None:
    engine = create_engine(sqlite_url)
    tries = 0
    with pytest.raises(sa.exc.OperationalError, match="syntax error"):
        for attempt in storage_attempts():
            with attempt, engine.connect() as conn:
                tries += 1
                conn.execute(sa.text("SELEC 1"))
    assert tries == 1
    engine.dispose()


def test_a_locked_sqlite_file_is_tried_again(tmp_path: Path) -> None:
    # A plain engine with a short busy timeout: opsloop's own waits 30 s before "locked".
    url = f"sqlite:///{tmp_path / 'locked.db'}"
    holder = sa.create_engine(url).connect()
    holder.exec_driver_sql("CREATE TABLE t (n INTEGER)")
    holder.commit()
    holder.exec_driver_sql("INSERT INTO t VALUES (0)")  # holds the write lock until commit
    engine = sa.create_engine(url, connect_args={"timeout": 0.01})
    policy = StorageRetry(attempts=3, first_wait_s=0.0, max_wait_s=0.0)
    tries = 0
    for attempt in storage_attempts(policy):
        with attempt, engine.begin() as conn:
            tries += 1
            if tries == 2:
                holder.commit()  # the other writer finishes between the tries
            conn.exec_driver_sql("INSERT INTO t VALUES (1)")
    assert tries == 2
    holder.commit()
    with engine.connect() as conn:
        assert conn.exec_driver_sql("SELECT count(*) FROM t").scalar() == 2
    holder.close()
    engine.dispose()
