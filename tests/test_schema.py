"""Schema creation and upgrades through Alembic, on SQLite and PostgreSQL."""

from __future__ import annotations

import threading
import uuid
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlmodel import SQLModel

from storage.engine import create_engine
from storage.errors import SchemaError
from storage.schema import current_revision, head_revision, setup

T0 = datetime(2030, 1, 7, 9, 0, tzinfo=UTC)


def test_setup_is_safe_to_call_twice(db_url: str) -> None:
    engine = create_engine(db_url)
    setup(engine)
    setup(engine)
    assert current_revision(engine) == head_revision()
    engine.dispose()


def test_migrations_build_exactly_the_models(db_url: str) -> None:
    engine = create_engine(db_url)
    setup(engine)
    with engine.connect() as conn:
        diff = compare_metadata(
            MigrationContext.configure(conn, opts={"compare_type": True}), SQLModel.metadata
        )
    assert diff == []
    engine.dispose()


def test_upgrade_from_first_migration_keeps_rows(db_url: str) -> None:
    engine = create_engine(db_url)
    setup(engine, revision="0001")
    assert current_revision(engine) == "0001"
    with engine.begin() as conn:
        conn.execute(
            sa.text(
                "INSERT INTO workflow_run (id, workflow, definition_hash, params, started_by,"
                " front_end, status, version, created_at, updated_at) VALUES ('r1', 'deploy',"
                " 'abc', '{\"service\": \"api\"}', 'U1', 'cli', 'waiting', 3,"
                " CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)"
            )
        )
        assert "checkpoint" not in sa.inspect(conn).get_table_names()
    setup(engine)
    assert current_revision(engine) == head_revision()
    with engine.connect() as conn:
        row = conn.execute(sa.text("SELECT workflow, status, version FROM workflow_run")).one()
        assert tuple(row) == ("deploy", "waiting", 3)
        assert "checkpoint" in sa.inspect(conn).get_table_names()
    engine.dispose()


def test_upgrade_to_0010_backfills_what_reports_read(db_url: str) -> None:
    """Rows from before 0010 get their run's workflow and creation time copied onto their
    steps, and the generated duration_ms (only for rows that ended so)."""
    engine = create_engine(db_url)
    setup(engine, revision="0009")
    run = {"id": "r-0010", "workflow": "deploy", "definition_hash": "x", "params": {},
           "started_by": "U1", "front_end": "cli", "status": "succeeded", "version": 0,
           "created_at": T0, "started_at": T0, "finished_at": T0 + timedelta(seconds=90.25),
           "updated_at": T0}  # fmt: skip
    steps = [{"run_id": "r-0010", "step_id": step, "status": status, "attempts": 1,
              "version": 0, "started_at": T0, "finished_at": T0 + timedelta(seconds=secs),
              "updated_at": T0}
             for step, status, secs in (("a", "succeeded", 1.5), ("b", "failed", 2),
                                        ("c", "skipped", 3))]  # fmt: skip
    with engine.begin() as conn:
        meta = sa.MetaData()
        runs, step_run = (
            sa.Table(t, meta, autoload_with=conn) for t in ("workflow_run", "step_run")
        )
        conn.execute(sa.insert(runs), [run])
        conn.execute(sa.insert(step_run), steps)
    setup(engine)
    with engine.connect() as conn:
        got = conn.execute(sa.text("SELECT step_id, workflow, run_created_at, duration_ms "
                                   "FROM step_run ORDER BY step_id")).all()  # fmt: skip
        run_ms = conn.execute(sa.text("SELECT duration_ms FROM workflow_run")).scalar()
    assert [(s, w, d) for s, w, _, d in got] == [("a", "deploy", 1500), ("b", "deploy", 2000),
                                                  ("c", "deploy", None)]  # fmt: skip
    assert all(created is not None for _, _, created, _ in got) and run_ms == 90250
    engine.dispose()


def test_a_database_from_a_newer_release_is_refused_untouched(db_url: str) -> None:
    engine = create_engine(db_url)
    setup(engine)
    with engine.begin() as conn:
        conn.execute(sa.text("UPDATE alembic_version SET version_num = '9999'"))
    with pytest.raises(SchemaError, match="newer release"):
        setup(engine)
    assert current_revision(engine) == "9999"
    engine.dispose()


def test_replicas_starting_together_all_succeed(db_url: str) -> None:
    engines = [create_engine(db_url) for _ in range(4)]
    errors: list[BaseException] = []
    barrier = threading.Barrier(len(engines))

    def start(engine: sa.Engine) -> None:
        try:
            barrier.wait(timeout=30)
            setup(engine)
        except BaseException as exc:  # collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=start, args=(e,)) for e in engines]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert errors == []
    assert current_revision(engines[0]) == head_revision()
    for e in engines:
        e.dispose()


@pytest.mark.postgres
def test_postgresql_indexes_match_the_models_predicates_included(pg_url: str) -> None:
    """compare_metadata does not look at a partial index's WHERE: a migration that built
    a full index where the model has a partial one (0024: step_run's report and status
    indexes) would pass the test above, and every step change would pay for it."""
    engine = create_engine(pg_url)
    setup(engine)
    other = f"t_{uuid.uuid4().hex[:12]}"
    try:
        with engine.begin() as conn:
            migrated = conn.execute(sa.text("SELECT current_schema()")).scalar_one()
            conn.execute(sa.text(f'CREATE SCHEMA "{other}"'))
            # The migrated tables' columns, with the models' indexes built on them.
            for table in SQLModel.metadata.sorted_tables:
                conn.execute(sa.text(f'CREATE TABLE "{other}".{table.name} '
                                     f"(LIKE {table.name} INCLUDING GENERATED)"))  # fmt: skip
            conn.execute(sa.text(f'SET LOCAL search_path TO "{other}"'))
            for table in SQLModel.metadata.sorted_tables:
                for index in table.indexes:
                    conn.execute(sa.schema.CreateIndex(index))
                for unique in table.constraints:
                    if isinstance(unique, sa.UniqueConstraint | sa.PrimaryKeyConstraint):
                        conn.execute(sa.schema.AddConstraint(unique))
        query = sa.text(
            "SELECT indexname, replace(indexdef, :prefix, '') FROM pg_indexes"
            " WHERE schemaname = :schema AND tablename <> 'alembic_version'"
        )
        with engine.connect() as conn:
            built = {
                schema: dict(conn.execute(query, {"schema": schema, "prefix": f"{schema}."}).all())
                for schema in (migrated, other)
            }
        assert built[migrated] == built[other]
        assert "WHERE (duration_ms IS NOT NULL)" in built[other]["ix_step_run_duration"]
    finally:
        with engine.begin() as conn:
            conn.execute(sa.text(f'DROP SCHEMA IF EXISTS "{other}" CASCADE'))
        engine.dispose()
