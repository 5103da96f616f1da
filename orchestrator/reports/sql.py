"""SQL that reads the same on SQLite and PostgreSQL: seconds between two timestamps, a
timestamp's UTC day, and nearest-rank percentiles.

Percentiles: PostgreSQL has `percentile_cont`, SQLite has none (its percentile
extension is off in most builds). Reports rank with `nth_values` (`nth_by` for
groups that differ by key): count the group, then skip to the rank in an index ordered
by the value (no sort of the window).
`percentiles` is the sort-based way, kept as the reference the tests compare with
(reports no longer call it; nor `seconds_between`, since durations are stored):
number each group's values in order
(`row_number() OVER (PARTITION BY key ORDER BY value)`), count the group
(`count(*) OVER (PARTITION BY key)`), and keep the value whose number is the
nearest rank ceil(p * n / 100), written (p * n + 99) // 100 in integers. The
nearest-rank percentile is always one of the values (no interpolation): p50 of
[1, 2, 3, 4] is 2, p95 of twenty values is the 19th.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.functions import FunctionElement


class seconds_between(FunctionElement[float]):
    """`end - start` in seconds; NULL if either is NULL."""

    type = sa.Float()
    inherit_cache = True
    name = "seconds_between"


@compiles(seconds_between, "sqlite")
def _seconds_sqlite(element: seconds_between, compiler: SQLCompiler, **kw: Any) -> str:
    start, end = (compiler.process(c, **kw) for c in element.clauses)
    # julianday counts whole milliseconds: durations are exact to the millisecond.
    return f"((julianday({end}) - julianday({start})) * 86400.0)"


@compiles(seconds_between, "postgresql")
def _seconds_pg(element: seconds_between, compiler: SQLCompiler, **kw: Any) -> str:
    start, end = (compiler.process(c, **kw) for c in element.clauses)
    return f"CAST(EXTRACT(EPOCH FROM ({end} - {start})) AS DOUBLE PRECISION)"


class utc_day(FunctionElement[str]):
    """A timestamp's UTC date as 'YYYY-MM-DD'."""

    type = sa.String()
    inherit_cache = True
    name = "utc_day"


@compiles(utc_day, "sqlite")
def _day_sqlite(element: utc_day, compiler: SQLCompiler, **kw: Any) -> str:
    return f"date({compiler.process(element.clauses, **kw)})"  # stored as UTC text


@compiles(utc_day, "postgresql")
def _day_pg(element: utc_day, compiler: SQLCompiler, **kw: Any) -> str:
    column = compiler.process(element.clauses, **kw)
    return f"to_char(({column}) AT TIME ZONE 'UTC', 'YYYY-MM-DD')"


def percentiles(rows: sa.Select, keys: Sequence[str], value: str, pcts: Sequence[int]) -> sa.Select:
    """Per group of `keys` in `rows`: n and the nearest-rank percentile of column `value`
    for each of `pcts`, as columns n, p50, p95... NULL values are left out."""
    src = rows.subquery()
    group = [src.c[k] for k in keys]
    v = src.c[value]
    ranked = (
        sa.select(*group, v.label("v"),
                  sa.func.row_number().over(partition_by=group, order_by=v).label("rn"),
                  sa.func.count().over(partition_by=group).label("n"))
        .where(v.is_not(None))
        .subquery()
    )  # fmt: skip
    out = [ranked.c[k] for k in keys]
    cols = [
        sa.func.max(sa.case((ranked.c.rn == (p * ranked.c.n + 99) // 100, ranked.c.v))).label(
            f"p{p}"
        )
        for p in pcts
    ]
    return sa.select(*out, sa.func.max(ranked.c.n).label("n"), *cols).group_by(*out)


# A group this small is read by its window and sorted; a bigger one is walked in value
# order (the window filtered from the index as it goes): the walk pays for rows outside
# the window, which dominate a short window.
SORTED = 2000


Ask = tuple[Sequence[sa.ColumnElement[bool]], int, int]  # (where, n, p)


def nth_values(conn: Connection, column: sa.Column, asks: Sequence[Ask]) -> list[Any]:
    """For each (where, n, p): the same nearest-rank percentile of `column` over the `n`
    rows `where` holds (n counted by the caller, in the same snapshot), for an index that
    orders `column` within the equality conditions: from the nearer end, skipping rows to
    the rank, so a p95 reads ~5% of a group instead of sorting all of it. All in one
    statement (UNION ALL of scalar subqueries): one round trip, not one per group."""
    found: list[Any] = []
    for start in range(0, len(asks), _PER_STATEMENT):
        parts = []
        for i, (where, n, p) in enumerate(asks[start : start + _PER_STATEMENT]):
            rank = (p * n + 99) // 100  # 1-based, ascending
            low = rank - 1 <= n - rank
            order, skip = (column.asc(), rank - 1) if low else (column.desc(), n - rank)
            value = (sa.select(column).where(*where, column.is_not(None)).order_by(order)
                     .limit(1).offset(skip).scalar_subquery())  # fmt: skip
            parts.append(sa.select(sa.literal(i).label("i"), value.label("v")))
        rows = conn.execute(sa.union_all(*parts) if len(parts) > 1 else parts[0]).all()
        found += [v for _, v in sorted(rows, key=lambda r: r[0])]
    return found


_PER_STATEMENT = 200  # SQLite takes at most 500 terms in one compound SELECT

Keyed = tuple[tuple[Any, ...], int, int]  # (the group's key values, n, p)


def nth_by(
    conn: Connection, column: sa.Column, keys: Sequence[sa.ColumnElement[Any]],
    where: Callable[[bool], sa.ColumnElement[bool]], asks: Sequence[Keyed],
) -> list[Any]:  # fmt: skip
    """`nth_values` for groups that differ only by the values of `keys` (a workflow, a
    workflow's step), all under `where(seek)` (seek: may an index seek on the window).

    PostgreSQL plans each scalar subquery of a statement apart (about 1 ms each beside
    seven indexes: 45 ms for 50 steps), so there one correlated subquery walks every
    group, its keys, direction and skip given as a VALUES list, planned once; it sees
    the window's real bounds, which its planner costs right (SQLite's needs `seek`).
    A NULL key (rows from before the column was filled) is asked the per-statement way."""
    if not asks:
        return []
    if conn.dialect.name != "postgresql" or any(v is None for key, _, _ in asks for v in key):
        return nth_values(conn, column, [
            ([k == v for k, v in zip(keys, key, strict=True)] + [where(n <= SORTED)], n, p)
            for key, n, p in asks])  # fmt: skip
    rows = []
    for i, (key, n, p) in enumerate(asks):
        rank = (p * n + 99) // 100
        low = rank - 1 <= n - rank
        rows.append((i, *key, low, rank - 1 if low else n - rank))
    names = [f"k{j}" for j in range(len(keys))]
    given = sa.values(sa.column("i", sa.Integer), *(sa.column(n, k.type) for n, k in
                                                    zip(names, keys, strict=True)),
                      sa.column("low", sa.Boolean), sa.column("skip", sa.Integer),
                      name="asked").data(rows)  # fmt: skip
    held = [k == given.c[n] for k, n in zip(keys, names, strict=True)]
    walks = [sa.select(column).where(*held, where(True), column.is_not(None)).order_by(order)
             .limit(1).offset(given.c.skip).scalar_subquery()
             for order in (column.asc(), column.desc())]  # fmt: skip
    stmt = sa.select(given.c.i, sa.case((given.c.low, walks[0]), else_=walks[1]))
    found = dict(conn.execute(stmt).all())
    return [found[i] for i in range(len(asks))]


def nearest_rank(values: Sequence[float], p: int) -> float | None:
    """The same percentile in Python (for figures already in memory, and for tests)."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[(p * len(ordered) + 99) // 100 - 1]
