"""Closed days' counts, kept in `report_day` (migration 0018): a 90-day report reads one
row per day and table instead of counting 500,000 step rows.

Exact, not an estimate: a day is rolled up by the same queries that count the rest of a
window (`orchestrator.reports.counts`), and a trigger deletes a day's row in the same
transaction as any change to a row of that day (a run finishing later, a late answer, a
retry, a pruned run), so a row present in a snapshot equals a count in that snapshot.
A report rolls up the whole days of its window that have no row yet, up to CHUNK_DAYS
consecutive days of one table per short write transaction; on PostgreSQL that
transaction first takes a SHARE lock on the table (writers wait for it), so no change
can commit between its count and its rows. If the write fails (a read-only database,
the lock not granted in time, another report rolling up the same day) the days are
counted with the rest, as before. Reports for an audience do not use it: kept counts
hold every run.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable
from dataclasses import replace
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from orchestrator.reports.counts import Counts, Days, count_gates, count_runs, count_steps
from orchestrator.reports.gate_figures import decisions_per_day
from orchestrator.reports.tables import REPORT_DAY
from orchestrator.reports.window import Window
from storage.engine import is_sqlite, read_transaction, write_transaction

log = logging.getLogger(__name__)


def _count_gates(conn: Connection, window: Window) -> Days:
    days = count_gates(conn, window)
    for key, p50 in decisions_per_day(conn, window).items():
        days.setdefault(key, Counts()).decisions[key] = p50
    return days


# part: (the table it counts, how)
PARTS: dict[str, tuple[str, Callable[[Connection, Window], Days]]] = {
    "runs": ("workflow_run", count_runs),
    "steps": ("step_run", count_steps),
    "gates": ("interaction", _count_gates),
}
CHUNK_DAYS = 7  # days rolled up per transaction (PostgreSQL: how long writers may wait)


def full_days(window: Window) -> list[date]:
    """The UTC days that lie wholly inside the window (closed: they end by its end)."""
    since, until = window.since.astimezone(UTC), window.until.astimezone(UTC)
    first = since.date() if since.time() == time(0) else since.date() + timedelta(days=1)
    return [first + timedelta(days=i) for i in range((until.date() - first).days)]


def _day_window(day: date) -> Window:
    start = datetime.combine(day, time(0), UTC)
    return Window(start, start + timedelta(days=1))


def ensure(engine: Engine, days: list[date]) -> None:
    """Roll up every (day, part) of `days` that has no row yet: consecutive days
    together, up to CHUNK_DAYS per transaction."""
    if not days:
        return
    with read_transaction(engine) as conn:
        stmt = sa.select(REPORT_DAY.c.day, REPORT_DAY.c.part).where(
            REPORT_DAY.c.day.between(days[0].isoformat(), days[-1].isoformat())
        )
        have = set(conn.execute(stmt).all())
    for part in PARTS:
        missing = [d for d in days if (d.isoformat(), part) not in have]
        for first, last in _runs(missing, CHUNK_DAYS):
            if not _roll_up(engine, first, last, part):
                return  # the database refuses: the rest is counted live


def _runs(days: list[date], longest: int) -> list[tuple[date, date]]:
    """Consecutive days as (first, last) pairs of at most `longest` days."""
    found: list[tuple[date, date]] = []
    for day in days:
        if found and (day - found[-1][1]).days == 1 and (day - found[-1][0]).days < longest:
            found[-1] = (found[-1][0], day)
        else:
            found.append((day, day))
    return found


def _roll_up(engine: Engine, first: date, last: date, part: str) -> bool:
    table, count = PARTS[part]
    stretch = Window(_day_window(first).since, _day_window(last).until)
    keys = [(first + timedelta(days=i)).isoformat() for i in range((last - first).days + 1)]
    try:
        with write_transaction(engine) as conn:
            if not is_sqlite(engine):  # SQLite: the write transaction already excludes writers
                # NOWAIT: a lock request that waited would queue every later writer of
                # the table (the whole engine) behind it; busy now, count this time.
                conn.execute(sa.text(f"LOCK TABLE {table} IN SHARE MODE NOWAIT"))
            counted = count(conn, stretch)
            rows = [{"day": k, "part": part,
                     "figures": json.dumps(_dump(part, counted.get(k, Counts())))}
                    for k in keys]  # fmt: skip
            conn.execute(sa.delete(REPORT_DAY).where(REPORT_DAY.c.day.in_(keys),
                                                     REPORT_DAY.c.part == part))  # fmt: skip
            conn.execute(sa.insert(REPORT_DAY), rows)
    except sa.exc.DBAPIError as exc:  # read-only, or a writer held the table just now
        log.info("report roll-up of %s..%s %s not kept, counted instead: %s",
                 first, last, part, exc.orig)  # fmt: skip
        return False
    return True


def _dump(part: str, counts: Counts) -> Any:
    if part == "runs":
        return [[*key, *value] for key, value in counts.runs.items()]
    if part == "steps":
        return {"steps": [[*key, n] for key, n in counts.steps.items()],
                "failing": [[*key, *value] for key, value in counts.failing.items()]}  # fmt: skip
    return {"gates": [[w, figures] for w, figures in counts.gates.items()],
            "decisions": counts.decisions}  # fmt: skip


def _add_kept(total: Counts, part: str, data: Any, workflows: tuple[str, ...]) -> None:
    """Add one kept row's counts to `total` (of `workflows` only, if any): what
    `Counts.add` does, without building a Counts per row (90 days: 270 rows)."""
    if part == "runs":
        for d, w, s, n, t in data:  # keyed by day: no two rows share a key
            if not workflows or w in workflows:
                total.runs[(d, w, s)] = [n, t]
        return
    if part == "steps":
        steps = total.steps
        for w, s, n in data["steps"]:
            if not workflows or w in workflows:
                steps[(w, s)] = steps.get((w, s), 0) + n
        failing = {(w, s): rest for w, s, *rest in data["failing"]
                   if not workflows or w in workflows}  # fmt: skip
        total.add(Counts(failing=failing))
        return
    for w, figures in data["gates"]:
        if not workflows or w in workflows:
            mine = total.gates.get(w)
            if mine is None:
                total.gates[w] = dict(figures)
            else:
                for name, n in figures.items():
                    mine[name] += n
    if not workflows:  # a day's p50 over every workflow says nothing of a few
        total.decisions.update(data["decisions"])


def window_counts(conn: Connection, window: Window, days: list[date]) -> Counts:
    """The window's counts: the kept rows of `days` (its whole days, rolled up), and the
    rest (the window's partial first and last day, days with no row) counted."""
    kept: dict[tuple[str, str], Any] = {}
    if days:
        stmt = sa.select(REPORT_DAY).where(
            REPORT_DAY.c.day.between(days[0].isoformat(), days[-1].isoformat())
        )
        kept = {(r.day, r.part): json.loads(r.figures) for r in conn.execute(stmt)}
    total = Counts()
    for part, (_, count) in PARTS.items():
        missing = [d for d in days if (d.isoformat(), part) not in kept]
        for stretch in _stretches(window, days, missing):
            for counted in count(conn, stretch).values():
                total.add(counted)
        for day in days:
            if (day.isoformat(), part) in kept:
                _add_kept(total, part, kept[day.isoformat(), part], window.workflows)
    if window.workflows and days:  # per-day p50 of a few workflows: not kept
        whole = replace(window, since=_day_window(days[0]).since,
                        until=_day_window(days[-1]).until)  # fmt: skip
        total.decisions.update(decisions_per_day(conn, whole))
    return total


def _stretches(window: Window, days: list[date], missing: Iterable[date]) -> list[Window]:
    """The parts of the window to count: before its first whole day, after its last, and
    each run of consecutive whole days with no row."""
    if not days:
        return [window]
    bounds = [(window.since, _day_window(days[0]).since),
              (_day_window(days[-1]).until, window.until)]  # fmt: skip
    runs: list[tuple[datetime, datetime]] = []
    for day in missing:
        start, end = _day_window(day).since, _day_window(day).until
        if runs and runs[-1][1] == start:
            runs[-1] = (runs[-1][0], end)
        else:
            runs.append((start, end))
    return [replace(window, since=a, until=b) for a, b in bounds + runs if a < b]
