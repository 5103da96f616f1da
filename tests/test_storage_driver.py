"""storage/driver.py: statements and a claim's transaction sent straight to the driver
must look, to everything above storage, as they did through SQLAlchemy: the same rows,
the same errors, the same invalidated pool after a lost connection, and every statement
seen by a listener on the engine."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import psycopg
import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from orchestrator import runs
from orchestrator.workflow.loader import parse_workflow
from storage import driver, prepared
from storage.engine import create_engine, read_transaction, single_write, write_transaction
from storage.schema import setup

WF = parse_workflow("name: w\nsteps:\n" + "".join(f"  - id: {s}\n    shell: ['true']\n"
                                                  for s in "ab"))  # fmt: skip
NOW = datetime(2026, 12, 6, 20, 0, 0, 123456, tzinfo=UTC)
# A conditional UPDATE as runs.set_step builds it: one expected status, a datetime, JSON.
SET = sa.update(runs.STEPS).where(
    runs.STEPS.c.run_id == sa.bindparam("k0"), runs.STEPS.c.step_id == sa.bindparam("k1"),
    runs.STEPS.c.status == sa.bindparam("expect"),
).values(status=sa.bindparam("v_status", type_=runs.STEPS.c.status.type),
         outputs=sa.bindparam("v_outputs", type_=runs.STEPS.c.outputs.type),
         updated_at=sa.bindparam("v_updated_at", type_=runs.STEPS.c.updated_at.type),
         version=runs.STEPS.c.version + 1)  # fmt: skip


def _new_run(engine: Engine) -> str:
    run_id = runs.new_run_id()
    with write_transaction(engine) as conn:
        runs.insert_started(conn, WF, run_id, {}, "U0", "cli", None, None, NOW)
    return run_id


def _set(run_id: str, step: str, status: str | None, expect: str = "pending") -> dict:
    return {"k0": run_id, "k1": step, "expect": expect, "v_status": status,
            "v_outputs": {"n": 1}, "v_updated_at": NOW}  # fmt: skip


def _status(engine: Engine, run_id: str, step: str) -> str:
    with read_transaction(engine) as conn:
        return conn.execute(
            sa.select(runs.STEPS.c.status).where(
                runs.STEPS.c.run_id == run_id, runs.STEPS.c.step_id == step
            )
        ).scalar_one()


def _listening(engine: Engine) -> tuple[list[str], object]:
    seen: list[str] = []

    def statement(_conn: Connection, _cursor: object, sql: str, *_rest: object) -> None:
        seen.append(sql.split()[0])

    sa.event.listen(engine, "before_cursor_execute", statement)
    return seen, statement


def test_a_failing_statement_raises_what_sqlalchemy_raises(engine: Engine) -> None:
    """A NOT NULL violation, sent to the driver and then (a listener on the engine) through
    SQLAlchemy: the same exception class, statement and driver error."""
    run_id = _new_run(engine)
    raised = []
    for listened in (False, True):
        seen, listener = _listening(engine) if listened else ([], None)
        try:
            with pytest.raises(sa.exc.DBAPIError) as info, write_transaction(engine) as conn:
                assert driver.ready(conn) is not listened
                prepared.execute(conn, SET, _set(run_id, "a", None))
        finally:
            if listener is not None:
                sa.event.remove(engine, "before_cursor_execute", listener)
        assert seen == (["UPDATE"] if listened else [])
        raised.append(info.value)
    direct, through = raised
    assert type(direct) is type(through) is sa.exc.IntegrityError
    assert direct.statement == through.statement and "UPDATE step_run" in direct.statement
    assert type(direct.orig) is type(through.orig)
    assert not direct.connection_invalidated
    assert _status(engine, run_id, "a") == "pending"  # rolled back


def test_a_claim_commits_and_a_failed_one_rolls_back(engine: Engine) -> None:
    run_id = _new_run(engine)
    with single_write(engine) as conn:
        assert prepared.execute(conn, SET, _set(run_id, "a", "running")).rowcount == 1
    assert _status(engine, run_id, "a") == "running"
    # The block went on after its statement and failed: nothing of it stays (PostgreSQL's
    # single_write has no transaction: its one statement commits itself, as documented).
    if engine.dialect.name == "sqlite":
        with pytest.raises(RuntimeError), single_write(engine) as conn:
            prepared.execute(conn, SET, _set(run_id, "b", "running"))
            raise RuntimeError("after the statement")
        assert _status(engine, run_id, "b") == "pending"


def test_a_core_statement_in_a_claim_joins_its_transaction(engine: Engine) -> None:
    """SQLAlchemy begins its own transaction for a Core statement inside single_write: it
    is the driver's, and it is committed with the rest."""
    run_id = _new_run(engine)
    with single_write(engine) as conn:
        prepared.execute(conn, SET, _set(run_id, "a", "running"))
        conn.execute(
            sa.update(runs.STEPS)
            .where(runs.STEPS.c.run_id == run_id, runs.STEPS.c.step_id == "b")
            .values(status="running")
        )
    assert _status(engine, run_id, "a") == _status(engine, run_id, "b") == "running"


def test_a_listener_sees_every_statement_and_commit_of_a_claim(engine: Engine) -> None:
    run_id = _new_run(engine)
    seen, listener = _listening(engine)
    commits: list[object] = []
    commit = commits.append  # one bound method: the listener's identity
    sa.event.listen(engine, "commit", commit)
    try:
        with single_write(engine) as conn:
            prepared.execute(conn, SET, _set(run_id, "a", "running"))
    finally:
        sa.event.remove(engine, "before_cursor_execute", listener)
        sa.event.remove(engine, "commit", commit)
    assert seen == ["UPDATE"]
    # SQLite: BEGIN IMMEDIATE ... COMMIT; PostgreSQL: autocommit, no COMMIT at all.
    assert len(commits) == (1 if engine.dialect.name == "sqlite" else 0)
    assert _status(engine, run_id, "a") == "running"


@pytest.mark.postgres
def test_a_lost_connection_is_invalidated_with_the_pool(pg_url: str) -> None:
    """Every backend of the pool terminated (a server restart): the statement that meets a
    dead connection fails as transient (connection_invalidated), and the pool's other
    dead connections are replaced before they are used, so the next claim just works."""
    app = f"opsloop-driver-{uuid.uuid4().hex[:8]}"
    engine = create_engine(f"{pg_url}&application_name={app}", pool_size=4, max_overflow=0)
    try:
        setup(engine)
        run_id = _new_run(engine)
        held = [engine.connect() for _ in range(4)]  # four live connections in the pool
        for conn in held:
            conn.exec_driver_sql("SELECT 1")
            conn.close()
        dsn = sa.make_url(pg_url).set(drivername="postgresql", query={})
        with psycopg.connect(dsn.render_as_string(hide_password=False), autocommit=True) as c:
            c.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                      " WHERE application_name = %s", (app,))  # fmt: skip
        with pytest.raises(sa.exc.OperationalError) as info, single_write(engine) as conn:
            assert driver.ready(conn)
            prepared.execute(conn, SET, _set(run_id, "a", "running"))
        assert info.value.connection_invalidated
        with single_write(engine) as conn:
            assert prepared.execute(conn, SET, _set(run_id, "b", "running")).rowcount == 1
        assert _status(engine, run_id, "b") == "running"
    finally:
        engine.dispose()


def test_a_prepared_statement_can_still_be_built_on(engine: Engine) -> None:
    """What prepared.execute reads of a statement (its result columns) leaves the statement
    as it was: a RETURNING copy of it, made into a CTE, still has its column."""
    stmt = (
        sa.update(runs.STEPS)
        .where(runs.STEPS.c.run_id == sa.bindparam("r"))
        .values(updated_at=sa.bindparam("u", type_=runs.STEPS.c.updated_at.type))
    )
    with write_transaction(engine) as conn:
        assert prepared.execute(conn, stmt, {"r": "no-such-run", "u": NOW}).rowcount == 0
    cte = stmt.returning(runs.STEPS.c.step_id).cte("q")
    assert list(cte.c.keys()) == ["step_id"]


def test_a_dialect_execution_listener_sees_a_claims_statement(engine: Engine) -> None:
    """A `do_execute` listener (it may also run the statement itself) saw every statement
    prepared.execute sent through SQLAlchemy: it must see them still."""
    run_id = _new_run(engine)
    seen: list[str] = []

    def do_execute(_cursor: object, sql: str, *_rest: object) -> None:
        seen.append(sql.split()[0])  # None: SQLAlchemy runs it as usual

    sa.event.listen(engine, "do_execute", do_execute)
    try:
        with single_write(engine) as conn:
            assert not driver.ready(conn)
            assert prepared.execute(conn, SET, _set(run_id, "a", "running")).rowcount == 1
    finally:
        sa.event.remove(engine, "do_execute", do_execute)
    assert seen == ["UPDATE"]
    assert _status(engine, run_id, "a") == "running"
