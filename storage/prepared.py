"""The few statements every step makes, sent as their SQL text: SQLAlchemy's work per
execution skipped.

A step costs a handful of conditional UPDATEs (its claim, its result, the run's version).
Executed as Core statements, each went through SQLAlchemy's per-execution work (the
statement's cache key, a compiled-cache lookup, an execution context): ~60-80 us of CPU
each on this machine, more than SQLite takes to run the UPDATE (docs/benchmarks.md,
session 8). A `Prepared` statement is compiled once per dialect; executing it binds the
parameters with the same type processors SQLAlchemy would use (UtcDateTime, JSON) and
hands the text to the driver (storage/driver.py), or to `Connection.exec_driver_sql`
when the engine has listeners or the connection is not in a transaction yet.
"""

from __future__ import annotations

import copy
import threading
from collections.abc import Mapping, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, CursorResult, Dialect

from storage import driver


def execute(
    conn: Connection, statement: sa.Executable,
    params: Mapping[str, Any] | Sequence[Mapping[str, Any]],
) -> CursorResult[Any] | driver.Rows:  # fmt: skip
    """`conn.execute(statement, params)` for a statement built once and kept (a module
    constant, or a functools.cache'd builder's): compiled once, sent as its text. The
    result gives `rowcount`, `scalar()`, `one()`, `first()` and `all()`."""
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
    ) -> CursorResult[Any] | driver.Rows:
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
            bound, many = compiled.bind(params), False
        else:
            bound, many = [compiled.bind(p) for p in params], True
        if compiled.plain_rows and driver.ready(conn):
            return driver.execute(conn, compiled.sql, bound, many)
        return conn.exec_driver_sql(compiled.sql, bound)


_PREPARED: dict[Any, Prepared] = {}  # by statement object: each is built once


class _Compiled:
    def __init__(self, statement: sa.Executable, dialect: Dialect) -> None:
        compiled = statement.compile(dialect=dialect)  # type: ignore[attr-defined]
        self.sql: str = compiled.string
        self.positional: bool = compiled.positional
        binds = {name: bind for bind, name in compiled.bind_names.items()}  # by rendered name
        self.expanding = any(b.expanding for b in binds.values())
        # Literal parameters of the statement itself (the 1 of `version + 1`).
        fixed = {n: b.effective_value for n, b in binds.items() if not b.required}
        self.names: list[str] = list(compiled.positiontup) if self.positional else list(binds)
        processors = {n: binds[n].type.dialect_impl(dialect).bind_processor(dialect)
                      for n in set(self.names)}  # fmt: skip
        # (name, its type's processor or None, its literal value or _REQUIRED) in order
        self.plan = tuple((n, processors[n], fixed.get(n, _REQUIRED)) for n in self.names)
        # Rows the driver returns are what SQLAlchemy would return (no column of a type
        # that converts what it reads), so the statement may go to the driver directly.
        # Read on a copy: SQLAlchemy memoizes them on the statement, and a statement built
        # on this one (`.returning(...)`, then a CTE) would keep the memo: no columns.
        columns = getattr(copy.copy(statement), "exported_columns", ())
        self.plain_rows = all(
            c.type.dialect_impl(dialect).result_processor(dialect, None) is None for c in columns
        )

    def bind(self, params: Mapping[str, Any]) -> Any:
        """The driver's parameters: a tuple (SQLite's qmark) or a dict (psycopg's pyformat)."""
        values = []
        try:
            for name, process, literal in self.plan:
                value = params[name] if literal is _REQUIRED else params.get(name, literal)
                values.append(value if process is None else process(value))
        except KeyError:
            missing = [n for n, _, literal in self.plan if literal is _REQUIRED and n not in params]
            if not missing:
                raise
            raise KeyError(
                f"no value for parameter(s) {', '.join(missing)} of {self.sql!r}"
            ) from None
        return tuple(values) if self.positional else dict(zip(self.names, values, strict=True))


_REQUIRED = object()
