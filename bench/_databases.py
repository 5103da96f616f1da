"""Fresh databases for the benchmarks: a SQLite file in a temp dir, or a PostgreSQL schema.

Not a benchmark itself (`./dev bench` skips files that start with `_`).
"""

from __future__ import annotations

import contextlib
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import sqlalchemy as sa

from storage.engine import create_engine, normalize_url

PG_URL = "postgresql://postgres@127.0.0.1:5432/test"


@contextlib.contextmanager
def pg_schema(admin: sa.Engine) -> Iterator[str]:
    """A fresh schema, dropped (with everything in it) on exit."""
    schema = f"bench_{uuid.uuid4().hex[:10]}"
    with admin.begin() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    try:
        yield schema
    finally:
        with admin.begin() as conn:
            conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))


@contextlib.contextmanager
def database_url(kind: str, prefix: str = "bench-") -> Iterator[str]:
    """The URL of a fresh database: a SQLite file, or a PostgreSQL schema dropped on exit."""
    if kind == "sqlite":
        with tempfile.TemporaryDirectory(prefix=prefix) as tmp:
            yield f"sqlite:///{Path(tmp) / 'opsloop.db'}"
        return
    admin = create_engine(PG_URL)
    try:
        with pg_schema(admin) as schema:
            yield f"{normalize_url(PG_URL)}?options=-csearch_path%3D{schema}"
    finally:
        admin.dispose()
