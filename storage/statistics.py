"""The SQLite query planner's statistics (`sqlite_stat1`), kept without anyone running
ANALYZE by hand. PostgreSQL's autovacuum keeps its own; this does nothing there.

Without statistics SQLite's planner guesses, and on a big database it guesses wrong: a
90-day report took 13.9x a full scan of the step table instead of 0.95x (it walked an
index for its order instead of seeking the window; docs/benchmarks.md). SQLite's advice
is `PRAGMA optimize`, but before 3.46 that only analyzes tables the same connection has
queried, and opsloop's connections are pooled, so a fresh connection would analyze
nothing. This applies the same rule by itself: a table is analyzed when it has no
statistics yet or its row count moved GROWTH-fold since it was last analyzed (SQLite
3.46+ uses 25-fold), then `PRAGMA optimize` does whatever else SQLite sees fit. The
analysis is exact (no analysis_limit: sampled statistics of the first rows of an index
misled the planner about the reports' indexes), so a table of a million rows takes
seconds, once per GROWTH-fold growth.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from sqlalchemy.engine import Engine

from storage.engine import checkpoint_wal, is_sqlite, writer_lock

log = logging.getLogger(__name__)

GROWTH = 10
EVERY_S = 3600.0  # how often `serve` checks (SQLite's documentation: hourly or daily)
WAL_CHECKPOINT_S = 1.0  # how often the write-ahead log is copied back, off the commit path


def sqlite_upkeep(
    engine: Engine, *, serving: bool
) -> list[tuple[float, str, Callable[[], object]]]:
    """What a process's timers do for a SQLite database, as (every seconds, job id,
    function): the WAL checkpoint (storage.engine.checkpoint_wal), and in the process
    serving the database, the planner's statistics. Nothing for PostgreSQL."""
    if not is_sqlite(engine):
        return []
    jobs: list[tuple[float, str, Callable[[], object]]] = [
        (WAL_CHECKPOINT_S, "wal", lambda: checkpoint_wal(engine))]  # fmt: skip
    if serving:
        jobs.append((EVERY_S, "statistics", lambda: keep_statistics(engine)))
    return jobs


def keep_statistics(engine: Engine) -> list[str]:
    """ANALYZE the tables whose statistics are missing or stale (see above); the tables
    analyzed. Nothing on PostgreSQL."""
    if not is_sqlite(engine):
        return []
    raw = engine.raw_connection()  # autocommit (isolation_level None): each ANALYZE commits
    try:
        cur = raw.cursor()
        listed = "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
        tables = [row[0] for row in cur.execute(listed).fetchall()]
        analyzed: dict[str, int] = {}  # rows when last analyzed: stat's first number
        if cur.execute("SELECT 1 FROM sqlite_master WHERE name = 'sqlite_stat1'").fetchone():
            for table, stat in cur.execute("SELECT tbl, stat FROM sqlite_stat1").fetchall():
                rows = int((stat or "0").split()[0])
                analyzed[table] = max(analyzed.get(table, 0), rows)
        stale = []
        for table in tables:
            rows = cur.execute(f'SELECT count(*) FROM "{table}"').fetchone()[0]
            was = analyzed.get(table)
            if was is None and rows == 0:
                continue  # nothing to learn (ANALYZE of an empty table records nothing)
            if was is None or rows > max(was, 1) * GROWTH or rows * GROWTH < was:
                stale.append(table)
        with writer_lock(engine):  # queue with this process's writers, not against them
            for table in stale:
                cur.execute(f'ANALYZE "{table}"')
            cur.execute("PRAGMA optimize")
        cur.close()
    finally:
        raw.close()
    if stale:
        log.debug("SQLite statistics refreshed for %s", ", ".join(stale))
    return stale
