"""step_run's partial indexes on PostgreSQL (migration 0024) still serve the queries that
seek them, and a run's steps inserted as one array keep what the per-row insert kept."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa

from orchestrator import runs, step_rows
from orchestrator.reports.counts import count_steps
from orchestrator.reports.window import Window
from storage.engine import create_engine, read_transaction, write_transaction
from storage.schema import setup

pytestmark = pytest.mark.postgres
BASE = datetime(2026, 1, 1, tzinfo=UTC)


def _scanned(node: dict[str, Any]) -> int:
    """Rows the plan's scans of step_run read (kept and filtered out)."""
    own = (node.get("Actual Rows", 0) + node.get("Rows Removed by Filter", 0)
           if node.get("Relation Name") == "step_run" else 0)  # fmt: skip
    return own + sum(_scanned(n) for n in node.get("Plans", []))


def test_a_days_failures_are_found_by_the_window_not_among_every_failure(pg_url: str) -> None:
    """A report's failure count for a short window has no `duration_ms IS NOT NULL` (a
    step failed before it started has none): with ix_step_run_created holding finished
    steps only, PostgreSQL walked every failed step of the table's history instead of
    the window's steps (found by review: 6,187 buffers against 88)."""
    engine = create_engine(pg_url)
    setup(engine)
    try:
        with engine.begin() as c:  # 100 days, 1,000 steps a day, 4% failed
            c.exec_driver_sql(
                "INSERT INTO workflow_run (id, workflow, definition_hash, params, started_by,"
                " front_end, status, version, created_at, updated_at)"
                " SELECT 'r' || g, 'w', 'd', '{}', 'u', 'cli', 'succeeded', 0,"
                " %(b)s::timestamptz + g * interval '1728 s', now()"
                " FROM generate_series(0, 5000) g", {"b": BASE})  # fmt: skip
            c.exec_driver_sql(
                "INSERT INTO step_run (run_id, step_id, status, attempts, version, updated_at,"
                " workflow, run_created_at, started_at, finished_at)"
                " SELECT 'r' || g / 20, 's' || g %% 20,"
                " CASE WHEN g %% 25 = 0 THEN 'failed' ELSE 'succeeded' END, 1, 2, now(), 'w',"
                " %(b)s::timestamptz + g * interval '86.4 s', %(b)s::timestamptz,"
                " %(b)s::timestamptz + interval '1 day'"
                " FROM generate_series(1, 100000) g", {"b": BASE})  # fmt: skip
            c.exec_driver_sql("ANALYZE step_run")
        sent: list[tuple[str, Any]] = []

        def record(_c: object, _cur: object, sql: str, params: Any, *_rest: object) -> None:
            sent.append((sql, params))

        sa.event.listen(engine, "before_cursor_execute", record)
        day = BASE + timedelta(days=50)
        with read_transaction(engine) as conn:
            count_steps(conn, Window(day, day + timedelta(days=1)))
        sa.event.remove(engine, "before_cursor_execute", record)
        sql, params = next((s, p) for s, p in sent if "row_number" in s)
        with engine.connect() as conn:
            plan = conn.exec_driver_sql(f"EXPLAIN (ANALYZE, FORMAT JSON) {sql}", params)
            tree = plan.scalar()[0]["Plan"]
        assert _scanned(tree) <= 2 * 1000, tree  # the day's ~1,000 steps, not 4,000 failures
    finally:
        engine.dispose()


def _new_run(conn: sa.Connection, run_id: str) -> None:
    values = {"id": run_id, "workflow": "w", "definition_hash": "d", "params": {},
              "started_by": "U1", "front_end": "cli", "status": "running", "version": 0,
              "created_at": BASE, "updated_at": BASE}  # fmt: skip
    conn.execute(sa.insert(runs.RUNS).values(values))


def test_steps_keep_their_order_and_a_too_long_id_is_refused(pg_url: str) -> None:
    """Rows get ids in the workflow's order (load_run reads steps by id), and an id longer
    than the column is refused as the per-row insert refused it, not cut short."""
    engine = create_engine(pg_url)
    setup(engine)
    try:
        order = [f"s{i}" for i in reversed(range(3000))]
        with write_transaction(engine) as conn:
            _new_run(conn, "r1")
            step_rows.insert(conn, "r1", "w", order, BASE)
        with read_transaction(engine) as conn:
            stored = conn.execute(sa.select(runs.STEPS.c.step_id).where(
                runs.STEPS.c.run_id == "r1").order_by(runs.STEPS.c.id)).scalars().all()  # fmt: skip
        assert stored == order
        too_long = pytest.raises(sa.exc.DataError, match="too long")
        with too_long, write_transaction(engine) as conn:
            _new_run(conn, "r2")
            step_rows.insert(conn, "r2", "w", ["x" * 201], BASE)
        with read_transaction(engine) as conn:
            assert runs.run_version(conn, "r2") is None  # nothing of it was kept
    finally:
        engine.dispose()


def _indexes(conn: sa.Connection) -> dict[str, str]:
    rows = conn.execute(sa.text(
        "SELECT indexname, replace(indexdef, current_schema() || '.', '') FROM pg_indexes"
        " WHERE schemaname = current_schema() AND tablename = 'step_run'"))  # fmt: skip
    return dict(rows.all())


def test_0024_goes_down_to_0023s_indexes_and_up_again(pg_url: str) -> None:
    """With step rows in the table: down gives the indexes 0023 built, up again those of
    a fresh database (each swap builds under a temporary name, then renames)."""
    from alembic import command

    from storage.schema import alembic_config

    engine = create_engine(pg_url)
    try:
        setup(engine, revision="0023")
        with engine.connect() as conn:
            at_0023 = _indexes(conn)
        setup(engine)
        with engine.connect() as conn:
            at_head = _indexes(conn)
        assert "WHERE" in at_head["ix_step_run_status"] and "ix_step_run_run_id" not in at_head
        with write_transaction(engine) as conn:
            _new_run(conn, "r1")
            step_rows.insert(conn, "r1", "w", ["a", "b"], BASE)
        with engine.begin() as conn:
            command.downgrade(alembic_config(conn), "0023")
        with engine.connect() as conn:
            assert _indexes(conn) == at_0023
        setup(engine)
        with engine.connect() as conn:
            assert _indexes(conn) == at_head
            assert conn.execute(sa.text("SELECT count(*) FROM step_run")).scalar() == 2
    finally:
        engine.dispose()


def test_an_index_left_under_a_temporary_name_does_not_stop_the_upgrade(pg_url: str) -> None:
    """0024 builds each index as `<name>_new` before swapping names: one left behind (by
    hand, or an interrupted attempt made outside `setup`) stopped the upgrade with
    DuplicateTable (found by review)."""
    engine = create_engine(pg_url)
    try:
        setup(engine, revision="0023")
        with engine.begin() as conn:
            conn.execute(sa.text("CREATE INDEX ix_step_run_created_new ON step_run (id)"))
        setup(engine)
        with engine.connect() as conn:
            built = _indexes(conn)
        assert "ix_step_run_created_new" not in built
        assert "OR" in built["ix_step_run_created"] and "failed" in built["ix_step_run_created"]
    finally:
        engine.dispose()
