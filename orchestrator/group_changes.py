"""User groups Slack said changed, counted in the database so that every replica, not
only the one that got Slack's event, stops trusting the members it cached.

A count (not a time) is compared, so replicas' clocks need not agree.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from orchestrator import runs
from orchestrator.storage_retry import storage_attempts
from storage.engine import dialect_insert, read_transaction, write_transaction
from storage.models import GroupChange

CHANGES: sa.Table = GroupChange.__table__  # type: ignore[attr-defined]
SLACK = "slack"  # the actor of what Slack reports


def record_change(
    engine: Engine, group: str, now: datetime, *, event: str,
    added: Sequence[str] = (), removed: Sequence[str] = (),
) -> None:  # fmt: skip
    """Count one change of `group` and audit it (`group.changed`, with who came and went)."""
    insert = dialect_insert(engine)(CHANGES).values(group_id=group, version=1, changed_at=now)
    upsert = insert.on_conflict_do_update(
        index_elements=[CHANGES.c.group_id],
        set_={"version": CHANGES.c.version + 1, "changed_at": now},
    )
    for attempt in storage_attempts():
        with attempt, write_transaction(engine) as conn:
            conn.execute(upsert)
            runs.audit(conn, SLACK, "group.changed", now=now, group=group, event=event,
                       added=list(added), removed=list(removed))  # fmt: skip


def change_count(engine: Engine, group: str) -> int:
    """How many changes of `group` were recorded (0: none)."""
    with read_transaction(engine) as conn:
        found = conn.execute(
            sa.select(CHANGES.c.version).where(CHANGES.c.group_id == group)
        ).scalar()
    return int(found or 0)
