"""One engine factory for every database opsloop can use.

`sqlite:///path` is the embedded default; `postgresql+psycopg://...` is the
production store. SQLite runs in WAL mode with a busy timeout, and every write
transaction starts with `BEGIN IMMEDIATE`, so a transaction never has to
upgrade a read lock to a write lock mid-way (that upgrade is what fails with
"database is locked" no matter how long the busy timeout is). Inside one
process, writers to one SQLite file also queue on a lock of their own, which
is much cheaper than SQLite's sleeping busy handler.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, Engine, make_url
from tenacity import retry, retry_if_exception, stop_after_delay, wait_random_exponential

from storage import driver
from storage.errors import ConfigurationError

DEFAULT_URL = "sqlite:///opsloop.db"
SQLITE_BUSY_TIMEOUT_MS = 30_000

_write_locks: weakref.WeakKeyDictionary[Engine, threading.Lock] = weakref.WeakKeyDictionary()
_write_locks_guard = threading.Lock()


def normalize_url(url: str) -> str:
    """Map the URL spellings people paste (postgres://, postgresql://) to our drivers."""
    url = url.strip()
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


def create_engine(url: str = DEFAULT_URL, **kwargs: Any) -> Engine:
    """Build an engine for `url`; raise ConfigurationError for URLs we cannot use."""
    url = normalize_url(url)
    try:
        parsed = make_url(url)
    except (sa.exc.ArgumentError, ValueError) as exc:  # ValueError: e.g. a bad port
        raise ConfigurationError(
            f"DATABASE_URL {url!r} is not a database URL; use sqlite:///path/to/opsloop.db "
            "or postgresql+psycopg://user@host:5432/dbname"
        ) from exc
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        return _sqlite_engine(parsed, **kwargs)
    if backend == "postgresql":
        if parsed.get_driver_name() != "psycopg":
            parsed = parsed.set(drivername="postgresql+psycopg")
        kwargs.setdefault("pool_size", 10)
        kwargs.setdefault("max_overflow", 20)
        # No pool_pre_ping: it costs a round trip per checkout. A connection that died
        # with the server is invalidated on first use and the pool refills.
        kwargs.setdefault("pool_recycle", 1800)
        return sa.create_engine(parsed, **kwargs)
    raise ConfigurationError(
        f"DATABASE_URL uses {backend!r}; opsloop supports sqlite:/// and postgresql+psycopg://"
    )


def _sqlite_engine(parsed: sa.URL, **kwargs: Any) -> Engine:
    database = parsed.database or ""
    if database in ("", ":memory:") or database.startswith("file::memory:"):
        raise ConfigurationError(
            "an in-memory SQLite database would lose every run at exit; "
            "use a file, e.g. sqlite:///opsloop.db"
        )
    parent = Path(database).expanduser().resolve().parent
    if not parent.is_dir():
        raise ConfigurationError(
            f"the directory for the SQLite database does not exist: {parent}; create it "
            "or point DATABASE_URL elsewhere"
        )
    connect_args = kwargs.pop("connect_args", {})
    connect_args.setdefault("check_same_thread", False)
    connect_args.setdefault("timeout", SQLITE_BUSY_TIMEOUT_MS / 1000)
    kwargs.setdefault("pool_size", 8)
    kwargs.setdefault("max_overflow", 24)
    engine = sa.create_engine(parsed, connect_args=connect_args, **kwargs)
    sa.event.listen(engine, "connect", _sqlite_on_connect)
    sa.event.listen(engine, "begin", _sqlite_on_begin)
    return engine


def _sqlite_on_connect(dbapi_conn: Any, _record: Any) -> None:
    # Let SQLAlchemy's "begin" event issue BEGIN, so we choose IMMEDIATE or DEFERRED.
    dbapi_conn.isolation_level = None
    cur = dbapi_conn.cursor()
    cur.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
    _use_wal(cur)
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.close()


@retry(
    retry=retry_if_exception(lambda e: "locked" in str(e)),
    wait=wait_random_exponential(multiplier=0.005, max=0.2),
    stop=stop_after_delay(SQLITE_BUSY_TIMEOUT_MS / 1000),
    reraise=True,
)
def _use_wal(cur: Any) -> None:
    # WAL is a property of the file, so only the first connection really switches it. That
    # switch needs the file to itself and SQLite answers "database is locked" at once,
    # without its busy handler, when another connection is opening the file meanwhile
    # (replicas starting together on a new database); so we wait and try again.
    if cur.execute("PRAGMA journal_mode").fetchone()[0].lower() != "wal":
        cur.execute("PRAGMA journal_mode=WAL")


def _sqlite_on_begin(conn: Connection) -> None:
    # A write transaction has sent BEGIN IMMEDIATE itself (write_transaction).
    # Straight to the driver: through SQLAlchemy's execution this cost ~15 us of CPU per
    # transaction, and every pass and every worker's claim is one (docs/benchmarks.md).
    raw = conn.connection.driver_connection
    if not raw.in_transaction:  # type: ignore[union-attr]
        raw.execute("BEGIN DEFERRED")  # type: ignore[union-attr]


def is_sqlite(engine: Engine) -> bool:
    return engine.dialect.name == "sqlite"


def dialect_insert(bind: Engine | Connection) -> Callable[..., Any]:
    """This database's own `insert()`, the one with ON CONFLICT (both databases have it)."""
    return postgresql.insert if bind.dialect.name == "postgresql" else sqlite.insert


def checkpoint_wal(engine: Engine) -> None:
    """Copy SQLite's write-ahead log into the database file; nothing to do on PostgreSQL.

    SQLite otherwise does this inside whichever commit finds the log past 1000 pages,
    and that commit (holding the writers' lock) then waits for an fsync of the file:
    a 100+ ms stall for every writer. A PASSIVE checkpoint from a timer blocks no writer
    and keeps the log short, so the commit-time one rarely has anything to do.
    """
    if not is_sqlite(engine):
        return
    raw = engine.raw_connection()  # autocommit (isolation_level None): no BEGIN around it
    try:
        raw.cursor().execute("PRAGMA wal_checkpoint(PASSIVE)").close()
    finally:
        raw.close()


def writer_lock(engine: Engine) -> threading.Lock:
    """The lock that writers to this engine's SQLite file queue on inside this process."""
    with _write_locks_guard:
        lock = _write_locks.get(engine)
        if lock is None:
            lock = _write_locks[engine] = threading.Lock()
        return lock


@contextmanager
def write_transaction(engine: Engine) -> Iterator[Connection]:
    """A transaction that will write: serialized per SQLite file, pooled on PostgreSQL."""
    if not is_sqlite(engine):
        with engine.connect() as conn, conn.begin():
            yield conn
        return
    with writer_lock(engine), engine.connect() as conn:
        # IMMEDIATE: the file's write lock from the start (the module's docstring says why).
        driver.send(conn, "BEGIN IMMEDIATE")
        with conn.begin():  # SQLAlchemy's transaction over it: _sqlite_on_begin sends nothing
            yield conn


@contextmanager
def single_write(engine: Engine) -> Iterator[Connection]:
    """For ONE write statement, atomic on its own. On PostgreSQL it runs without BEGIN and
    COMMIT: the statement commits itself, as durably as a COMMIT would, before it returns
    (two round trips fewer than write_transaction). On SQLite, a write transaction (the
    file's writers' lock). A second statement would be a transaction of its own: use
    write_transaction for more than one.

    Unless the engine has listeners (storage/driver.py), the transaction is the driver's
    own, without SQLAlchemy's begin and commit: the same BEGIN IMMEDIATE and COMMIT on
    SQLite, the same autocommit on PostgreSQL, ~20-30 us of CPU less per claim."""
    if not driver.plain(engine):
        if is_sqlite(engine):
            with write_transaction(engine) as conn:
                yield conn
            return
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            yield conn
        return
    if is_sqlite(engine):
        with writer_lock(engine), engine.connect() as conn:
            driver.send(conn, "BEGIN IMMEDIATE")
            with _committed(conn):
                yield conn
        return
    with engine.connect() as conn, driver.autocommit(conn):
        yield conn


@contextmanager
def _committed(conn: Connection) -> Iterator[None]:
    """Commit what the block did on `conn` (roll it back if it raises): through SQLAlchemy
    if a statement of the block began its transaction, else on the driver."""
    try:
        yield
    except BaseException:
        if conn.in_transaction():
            conn.rollback()
        else:
            driver.rollback(conn)
        raise
    if conn.in_transaction():
        conn.commit()
    else:
        driver.commit(conn)


@contextmanager
def read_transaction(engine: Engine) -> Iterator[Connection]:
    """A read-only transaction (a consistent snapshot on both databases: on PostgreSQL
    REPEATABLE READ, where READ COMMITTED gives each statement its own snapshot)."""
    if is_sqlite(engine):
        with engine.connect() as conn, conn.begin():
            yield conn
        return
    options = {"isolation_level": "REPEATABLE READ", "postgresql_readonly": True}
    with engine.connect().execution_options(**options) as conn, conn.begin():
        yield conn


@contextmanager
def single_reads(engine: Engine) -> Iterator[Connection]:
    """Reads that need no snapshot in common (each statement stands on its own): without a
    transaction on PostgreSQL, which spares the BEGIN and COMMIT round trips; a read
    transaction on SQLite, where those cost nothing."""
    if is_sqlite(engine):
        with read_transaction(engine) as conn:
            yield conn
        return
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        yield conn
