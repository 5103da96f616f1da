"""The checkpointer's write path on SQLite: one connection, statements compiled once.

SQLite takes one writer at a time anyway, so a pool buys nothing for writes;
what costs is SQLAlchemy's per-call work (pool checkout, statement compile
lookup, parameter processing), which is larger than the INSERT itself. This
writer keeps one DBAPI connection of the engine (with the engine's pragmas),
renders each statement to SQL once, and runs a batch of them in one
`BEGIN IMMEDIATE` transaction under the engine's writer lock, so it still
queues with every other writer in the process and, through the busy
timeout, with other processes.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from storage.engine import writer_lock


class SqliteWriter:
    def __init__(self, engine: Engine, statements: Mapping[str, sa.Insert]) -> None:
        self._lock = writer_lock(engine)
        self._conn: Any = None
        self._engine = engine
        self._sql: dict[str, tuple[str, tuple[str, ...]]] = {}
        for name, stmt in statements.items():
            compiled = stmt.compile(dialect=engine.dialect)
            self._sql[name] = (str(compiled), tuple(compiled.positiontup or ()))

    def write(self, batches: Sequence[tuple[str, Sequence[Mapping[str, Any]]]]) -> None:
        """Run each (statement name, rows) in order, in one transaction."""
        with self._lock:
            if self._conn is None:
                self._conn = self._engine.raw_connection()
            cur = self._conn.cursor()
            cur.execute("BEGIN IMMEDIATE")
            try:
                for name, rows in batches:
                    sql, order = self._sql[name]
                    cur.executemany(sql, [tuple(_param(r[k]) for k in order) for r in rows])
                cur.execute("COMMIT")
            except BaseException:
                cur.execute("ROLLBACK")
                raise
            finally:
                cur.close()

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None


def _param(value: Any) -> Any:
    # Only the metadata column is a dict; SQLAlchemy's JSON type would dump it the same way.
    return json.dumps(value) if isinstance(value, dict) else value
