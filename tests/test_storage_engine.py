"""The engine factory: URL handling, clear configuration errors, SQLite settings."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa

from storage.engine import checkpoint_wal, create_engine, normalize_url
from storage.errors import ConfigurationError


def test_postgres_spellings_use_psycopg() -> None:
    assert normalize_url("postgres://u@h/db") == "postgresql+psycopg://u@h/db"
    assert normalize_url("postgresql://u@h/db") == "postgresql+psycopg://u@h/db"
    assert normalize_url("sqlite:///x.db") == "sqlite:///x.db"


@pytest.mark.parametrize(
    ("url", "hint"),
    [
        ("not a url", "sqlite:///path/to/opsloop.db"),
        ("sqlite://", "in-memory"),
        ("sqlite:///:memory:", "in-memory"),
        ("mysql://root@localhost/test", "supports sqlite"),
        ("sqlite:////no/such/dir/opsloop.db", "does not exist"),
    ],
)
def test_unusable_urls_say_how_to_fix_them(url: str, hint: str) -> None:
    with pytest.raises(ConfigurationError, match=hint):
        create_engine(url)


def test_sqlite_runs_in_wal_mode_with_busy_timeout(tmp_path: Path) -> None:
    engine = create_engine(f"sqlite:///{tmp_path / 'x.db'}")
    with engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() >= 5000
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
    engine.dispose()


def test_sqlite_writers_from_many_threads_never_hit_database_is_locked(tmp_path: Path) -> None:
    from concurrent.futures import ThreadPoolExecutor

    from storage.engine import write_transaction

    engine = create_engine(f"sqlite:///{tmp_path / 'x.db'}")
    with engine.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE t (n INTEGER)")

    def add(n: int) -> None:
        with write_transaction(engine) as conn:
            # read-then-write: the pattern that fails under DEFERRED transactions
            conn.execute(sa.text("SELECT count(*) FROM t")).scalar()
            conn.execute(sa.text("INSERT INTO t VALUES (:n)"), {"n": n})

    with ThreadPoolExecutor(32) as pool:
        list(pool.map(add, range(400)))
    with engine.connect() as conn:
        assert conn.exec_driver_sql("SELECT count(*) FROM t").scalar() == 400
    engine.dispose()


def test_checkpoint_wal_copies_the_log_into_the_database_file(tmp_path: Path) -> None:
    path = tmp_path / "wal.db"
    engine = create_engine(f"sqlite:///{path}")
    with engine.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE t (x BLOB)")
        for _ in range(50):
            conn.exec_driver_sql("INSERT INTO t VALUES (randomblob(4096))")
    before = path.stat().st_size  # the rows are still only in the write-ahead log
    checkpoint_wal(engine)
    assert before < 50 * 4096 <= path.stat().st_size
    with engine.connect() as conn:
        assert conn.exec_driver_sql("SELECT count(*) FROM t").scalar() == 50
    engine.dispose()
