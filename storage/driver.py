"""Statements sent straight to the driver's connection, failing as SQLAlchemy fails.

SQLAlchemy's work around each execution (an execution context, a cursor result, event
dispatch) costs more CPU than SQLite takes to run a step's claim, and ~25 us of CPU per
statement on PostgreSQL. The hot statements (storage/prepared.py) and a claim's
transaction (`storage.engine.single_write`) skip it when nothing would notice: no
listener for statement or transaction events on the engine and no SQLAlchemy statement
logging. With one (a test counting round trips, a tracer), they go through SQLAlchemy
as before, so the listener sees every statement.

What does not change: the connection comes from the engine's pool and goes back to it;
the statement text, its parameters (bound by the same type processors) and the
transaction around it are the same. A driver error is raised as SQLAlchemy raises it,
an `sqlalchemy.exc.DBAPIError` subclass with the statement, and a lost connection is
invalidated as SQLAlchemy invalidates it (`connection_invalidated`, and the pool's
other connections with it), so orchestrator/storage_retry.py sees what it saw before.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, NoReturn

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Dialect, Engine


def plain(engine: Engine) -> bool:
    """True if nothing listens to this engine's statements or transactions and it logs
    none of them: going to the driver directly changes nothing anyone can see."""
    events = engine.dispatch
    return not (
        events.before_cursor_execute or events.after_cursor_execute or events.commit
        or events.rollback or len(events.begin) > _OWN_BEGIN_LISTENERS.get(engine.dialect.name, 0)
        or engine.logger.isEnabledFor(logging.INFO) or _dialect_listened(engine.dialect)
    )  # fmt: skip


def _dialect_listened(dialect: Dialect) -> bool:
    # A dialect's execution events see (or replace) every statement SQLAlchemy sends.
    events = dialect.dispatch
    return bool(events.handle_error or events.do_execute or events.do_executemany
                or events.do_execute_no_params)  # fmt: skip


# storage.engine's own "begin" listener on SQLite sends BEGIN, nothing anyone observes.
_OWN_BEGIN_LISTENERS = {"sqlite": 1}


def ready(conn: Connection) -> bool:
    """May a statement on `conn` go to the driver now? Only where SQLAlchemy would not
    begin a transaction for it: inside one (its own, or one begun on the driver), or on
    a connection in autocommit; and only on a plain engine."""
    if not plain(conn.engine):
        return False
    if conn.in_transaction():
        return True
    driver = conn.connection.driver_connection
    if conn.dialect.name == "sqlite":
        return bool(driver.in_transaction)  # type: ignore[union-attr]
    return bool(driver.autocommit)  # type: ignore[union-attr]


class Rows:
    """What a statement sent to the driver returned: its rows (read at once, so the
    cursor is closed) and its row count, read as from a `CursorResult`."""

    __slots__ = ("_rows", "rowcount")

    def __init__(self, rowcount: int, rows: list[Any]) -> None:
        self.rowcount = rowcount
        self._rows = rows

    def all(self) -> list[Any]:
        return list(self._rows)

    def first(self) -> Any:
        return self._rows[0] if self._rows else None

    def scalar(self) -> Any:
        return self._rows[0][0] if self._rows else None

    def one(self) -> Any:
        if len(self._rows) != 1:
            kind = sa.exc.NoResultFound if not self._rows else sa.exc.MultipleResultsFound
            raise kind(f"expected one row, the statement returned {len(self._rows)}")
        return self._rows[0]


def execute(conn: Connection, sql: str, params: Any, many: bool = False) -> Rows:
    """Run `sql` with driver parameters `params` (a sequence of them: executemany) on
    `conn`'s driver connection; check `ready(conn)` first."""
    cursor = conn.connection.cursor()
    try:
        if many:
            cursor.executemany(sql, params)
        else:
            cursor.execute(sql, params)
        rows = cursor.fetchall() if cursor.description is not None else []
        # Read after the rows: SQLite counts a RETURNING statement's rows as they are read.
        return Rows(cursor.rowcount, rows)
    except BaseException as exc:
        _close(cursor)
        fail(conn, exc, sql, params, many)
    finally:
        _close(cursor)


def _close(cursor: Any) -> None:
    with contextlib.suppress(Exception):  # its connection is gone: nothing left to close
        cursor.close()


def send(conn: Connection, sql: str) -> None:
    """One parameterless statement (BEGIN IMMEDIATE, COMMIT) on the driver connection."""
    driver = conn.connection.driver_connection
    try:
        driver.execute(sql).close()  # type: ignore[union-attr]
    except BaseException as exc:
        fail(conn, exc, sql, ())


@contextmanager
def autocommit(conn: Connection) -> Iterator[None]:
    """`conn`'s driver connection in autocommit (PostgreSQL) for the block: each statement
    commits itself, as with SQLAlchemy's AUTOCOMMIT isolation level, which would also
    set the driver's `autocommit` and reset it when the connection is returned."""
    raw = conn.connection.driver_connection
    raw.autocommit = True  # type: ignore[union-attr]
    try:
        yield
    finally:
        if not conn.invalidated:
            try:
                raw.autocommit = False  # type: ignore[union-attr]
            except Exception as exc:  # a connection lost meanwhile: never reused
                conn.invalidate(exc)


def commit(conn: Connection) -> None:
    """Commit the driver's transaction on `conn`, failing as SQLAlchemy's commit fails."""
    try:
        conn.connection.driver_connection.commit()  # type: ignore[union-attr]
    except BaseException as exc:
        fail(conn, exc, None, None)


def rollback(conn: Connection) -> None:
    """Roll the driver's transaction back on the way out of a failure. A connection that
    is lost is left to the pool; an error here must not hide the one being raised."""
    if conn.invalidated:
        return
    try:
        conn.connection.driver_connection.rollback()  # type: ignore[union-attr]
    except Exception as exc:
        conn.invalidate(exc)


def fail(
    conn: Connection, exc: BaseException, statement: str | None, params: Any, many: bool = False
) -> NoReturn:
    """Raise `exc`, from the driver, as SQLAlchemy's execution would have raised it."""
    dialect = conn.dialect
    if not isinstance(exc, Exception):  # an interrupt mid-statement: the connection's
        if not conn.invalidated:  # state is unknown, so it is not used again
            conn.invalidate(exc)
        raise exc
    dbapi_error = dialect.loaded_dbapi.Error
    if not isinstance(exc, dbapi_error):
        raise exc
    lost = not conn.invalidated and dialect.is_disconnect(
        exc, conn.connection.driver_connection, None
    )
    if lost:
        _invalidate(conn, exc)
    raise sa.exc.DBAPIError.instance(
        statement, params, exc, dbapi_error,
        hide_parameters=conn.engine.hide_parameters, connection_invalidated=lost,
        dialect=dialect, ismulti=many,
    ) from exc  # fmt: skip


def _invalidate(conn: Connection, exc: BaseException) -> None:
    # A lost connection is lost for good (the dialect reads that from the connection's
    # state), so a statement SQLAlchemy sends on it fails the same way, and SQLAlchemy
    # then does what it does for a disconnect it sees: the pool's older connections are
    # replaced at their next checkout, this one at once. There is no public call for the
    # first half.
    with contextlib.suppress(Exception):  # it is meant to fail, whichever way it does
        conn.exec_driver_sql(_PROBE)
    if not conn.invalidated:
        conn.invalidate(exc)


_PROBE = "SELECT 1"
