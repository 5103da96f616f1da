"""Schema creation and upgrades through Alembic, on SQLite and PostgreSQL."""

from __future__ import annotations

import threading

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlmodel import SQLModel

from storage.engine import create_engine
from storage.errors import SchemaError
from storage.schema import current_revision, head_revision, setup


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
