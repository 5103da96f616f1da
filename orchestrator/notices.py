"""Wake-ups between processes on PostgreSQL: LISTEN/NOTIFY, with polling as the fallback.

A process that commits something another process should act on soon sends a notice
in the same transaction (`notify`; PostgreSQL delivers it at commit, never for a
rollback). A serving process listens on a dedicated connection in a thread
(`Listener`) and calls the handler named by the notice. Notices only make things
sooner: every handler also runs on its own timer, so a lost notice (a dropped
connection, SQLite, which has none) costs latency, never correctness. Each time the
listener (re)connects it calls every handler once, for what was sent while it was not
listening yet.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping

import sqlalchemy as sa

log = logging.getLogger(__name__)
CHANNEL = "opsloop"
RECONNECT_S = 5.0
# Sent by a trigger on audit_log (migration 0020) at the commit of anything audited: the
# change feed has something new (orchestrator/changes.py). Its sender is the schema.
CHANGES = "changes"


def notify(conn: sa.Connection, what: str, sender: str = "") -> None:
    """Tell listening processes `what` happened, at this transaction's commit (PostgreSQL)."""
    if conn.dialect.name == "postgresql":
        conn.execute(sa.select(sa.func.pg_notify(CHANNEL, f"{what} {sender}")))


class Listener:
    """Calls `handlers[what]` for each notice `what` another process sends (PostgreSQL)."""

    def __init__(
        self, engine: sa.Engine, me: str, handlers: Mapping[str, Callable[[], None]] | None = None
    ) -> None:
        self._engine = engine
        self._me = me  # this process's own notices are ignored: it acted already
        self._handlers = dict(handlers or {})
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="opsloop-listen", daemon=True)

    def on(self, what: str, handler: Callable[[], None]) -> None:
        """Call `handler` for notice `what` too (before `start`)."""
        self._handlers[what] = handler

    @property
    def listens(self) -> bool:
        """Whether notices can come at all (PostgreSQL): else only the timers poll."""
        return self._engine.dialect.name == "postgresql"

    def start(self) -> None:
        if self.listens and not self._thread.is_alive():
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(5)

    def _loop(self) -> None:
        import psycopg

        cargs, cparams = self._engine.dialect.create_connect_args(self._engine.url)
        while not self._stop.is_set():
            try:
                with psycopg.connect(*cargs, **{**cparams, "autocommit": True}) as conn:
                    conn.execute(f"LISTEN {CHANNEL}")
                    row = conn.execute("SELECT current_schema()").fetchone()
                    schema = row[0] if row else None
                    # A notice sent before LISTEN took effect (at start, or while the
                    # connection was away) was sent to nobody: catch up once, now.
                    for what in sorted(self._handlers):
                        self._call(what)
                    while not self._stop.is_set():
                        # Wake at the first notice (a timeout: a stop is seen within a quarter
                        # of a second), then take those that came with it: one call each.
                        got = list(conn.notifies(timeout=0.25, stop_after=1))
                        if got:
                            got += conn.notifies(timeout=0.01)
                        wanted = {what for what, _, sender in
                                  (n.payload.partition(" ") for n in got)
                                  if self._wanted(what, sender, schema)}  # fmt: skip
                        for what in sorted(wanted):
                            self._call(what)
            except Exception:  # the database is away: the timers still poll; listen again
                log.warning("not listening for notices; again in %g s", RECONNECT_S,
                            exc_info=True)  # fmt: skip
                self._stop.wait(RECONNECT_S)

    def _wanted(self, what: str, sender: str, schema: str | None) -> bool:
        """Not this process's own notice; a change notice only from its own schema (the
        channel is the database's: several opsloop schemas may share one database)."""
        if what == CHANGES:
            return sender == schema
        return sender != self._me

    def _call(self, what: str) -> None:
        handler = self._handlers.get(what)
        if handler is None:
            return
        try:
            handler()
        except Exception:
            log.exception("handling notice %r failed; the periodic check will retry", what)
