"""Which processes serve the database now: one row per replica, refreshed at each sweep.

Step leases show a replica only while it runs a step; this row shows it while it
runs at all. A process that recovers (`serve`, `serve --no-slack`, `resume`) writes
its row at start and at every sweep (every lease period), and deletes it when it
closes; one that died stops refreshing it and counts as gone after `ALIVE`.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from orchestrator.leases import LEASE
from storage.engine import dialect_insert, write_transaction
from storage.models import Replica

REPLICAS: sa.Table = Replica.__table__  # type: ignore[attr-defined]
ALIVE = 2 * LEASE  # seen within two sweep periods: one late sweep is not a death
FORGET = timedelta(days=1)  # rows of replicas gone this long are deleted


def beat(engine: Engine, me: str, now: datetime) -> None:
    """This replica is alive at `now`; rows of long-gone replicas are dropped."""
    with write_transaction(engine) as conn:
        conn.execute(
            dialect_insert(conn)(REPLICAS)
            .values(id=me, started_at=now, seen_at=now)
            .on_conflict_do_update(index_elements=["id"], set_={"seen_at": now})
        )
        conn.execute(sa.delete(REPLICAS).where(REPLICAS.c.seen_at < now - FORGET))


def leave(engine: Engine, me: str) -> None:
    """This replica stops: it no longer counts as alive."""
    with write_transaction(engine) as conn:
        conn.execute(sa.delete(REPLICAS).where(REPLICAS.c.id == me))


def alive(conn: Connection, now: datetime) -> int:
    """Replicas that refreshed their row within `ALIVE` of `now`."""
    query = sa.select(sa.func.count()).where(REPLICAS.c.seen_at >= now - ALIVE)
    return int(conn.execute(query.select_from(REPLICAS)).scalar() or 0)
