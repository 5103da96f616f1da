"""The few statements every step makes, sent as their SQL text: SQLAlchemy's work per
execution skipped.

A step costs a handful of conditional UPDATEs (its claim, its result, the run's version).
Executed as Core statements, each went through SQLAlchemy's per-execution work (the
statement's cache key, a compiled-cache lookup, an execution context): ~60-80 us of CPU
each on this machine, more than SQLite takes to run the UPDATE (docs/benchmarks.md,
session 8). A `Prepared` statement is compiled once per dialect; executing it binds the
parameters with the same type processors SQLAlchemy would use (UtcDateTime, JSON) and
hands the text to the driver through `Connection.exec_driver_sql`.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, CursorResult, Dialect


def execute(
    conn: Connection, statement: sa.Executable,
    params: Mapping[str, Any] | Sequence[Mapping[str, Any]],
) -> CursorResult[Any]:  # fmt: skip
    """`conn.execute(statement, params)` for a statement built once and kept (a module
    constant, or a functools.cache'd builder's): compiled once, sent as its text."""
    prepared = _PREPARED.get(statement)
    if prepared is None:
        prepared = _PREPARED.setdefault(statement, Prepared(statement))
    return prepared.execute(conn, params)


class Prepared:
    """One Core statement, compiled once per dialect; `execute` binds and sends its text.
    A statement with an expanding IN list goes through SQLAlchemy as usual."""

    def __init__(self, statement: sa.Executable) -> None:
        self._statement = statement
        self._compiled: dict[str, _Compiled] = {}
        self._lock = threading.Lock()

    def execute(
        self, conn: Connection, params: Mapping[str, Any] | Sequence[Mapping[str, Any]]
    ) -> CursorResult[Any]:
        """Run the statement with `params` (a list: once per item, as executemany)."""
        compiled = self._compiled.get(conn.dialect.name)
        if compiled is None:
            with self._lock:
                compiled = self._compiled.setdefault(
                    conn.dialect.name, _Compiled(self._statement, conn.dialect)
                )
        if compiled.expanding:
            return conn.execute(self._statement, params)  # type: ignore[arg-type]
        if isinstance(params, Mapping):
            return conn.exec_driver_sql(compiled.sql, compiled.bind(params))
        return conn.exec_driver_sql(compiled.sql, [compiled.bind(p) for p in params])


_PREPARED: dict[Any, Prepared] = {}  # by statement object: each is built once


class _Compiled:
    def __init__(self, statement: sa.Executable, dialect: Dialect) -> None:
        compiled = statement.compile(dialect=dialect)  # type: ignore[attr-defined]
        self.sql: str = compiled.string
        self.positional: bool = compiled.positional
        binds = {name: bind for bind, name in compiled.bind_names.items()}  # by rendered name
        self.expanding = any(b.expanding for b in binds.values())
        # Literal parameters of the statement itself (the 1 of `version + 1`).
        self.fixed: dict[str, Any] = {
            n: b.effective_value for n, b in binds.items() if not b.required
        }
        self.names: list[str] = list(compiled.positiontup) if self.positional else list(binds)
        self.processors: dict[str, Callable[[Any], Any]] = {}
        for name in set(self.names):
            kind = binds[name].type.dialect_impl(dialect)
            processor = kind.bind_processor(dialect)
            if processor is not None:
                self.processors[name] = processor

    def bind(self, params: Mapping[str, Any]) -> Any:
        """The driver's parameters: a tuple (SQLite's qmark) or a dict (psycopg's pyformat)."""
        values = {**self.fixed, **params}
        missing = [n for n in self.names if n not in values]
        if missing:
            raise KeyError(f"no value for parameter(s) {', '.join(missing)} of {self.sql!r}")
        procs = self.processors
        bound = {n: procs[n](values[n]) if n in procs else values[n] for n in self.names}
        return tuple(bound[n] for n in self.names) if self.positional else bound
