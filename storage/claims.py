"""Claim a row only if it is still in an expected state: one conditional UPDATE.

The orchestrator builds exactly-once decisions and timeouts on this: when a
person's answer and a deadline race for one pending interaction, both run
`claim(...)`, the database lets exactly one UPDATE match, and the loser reads
back who won. No lock is held across the decision and no read-then-write race
exists, on SQLite and PostgreSQL alike.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection
from sqlmodel import SQLModel


def claim(
    conn: Connection,
    model: type[SQLModel],
    key: Any,
    *,
    expect: Iterable[str],
    values: Mapping[str, Any],
    version: int | None = None,
) -> bool:
    """Apply `values` to the row `key` if its status is one of `expect` (and, when given,
    its version is `version`); bump its version. True if this call won the row."""
    table: sa.Table = model.__table__  # type: ignore[attr-defined]
    (pk,) = table.primary_key.columns
    stmt = (
        sa.update(table)
        .where(pk == key, table.c.status.in_(list(expect)))
        .values(**values, version=table.c.version + 1)
    )
    if version is not None:
        stmt = stmt.where(table.c.version == version)
    return conn.execute(stmt).rowcount == 1
