"""Read-only questions front ends ask: recent runs, open interactions."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from orchestrator import interactions, runs
from orchestrator.errors import NotFound
from orchestrator.protocol import InteractionView, RunView
from storage.engine import read_transaction
from storage.statuses import InteractionStatus


@dataclass(frozen=True)
class RunSummary:
    id: str
    workflow: str
    status: str
    started_by: str
    created_at: datetime
    finished_at: datetime | None
    waiting_for: int  # open interactions
    channel: str | None = None  # where it was started from (who may see it: access.py)


def recent_runs(engine: Engine, limit: int = 20) -> list[RunSummary]:
    """The newest runs first, each with how many interactions wait for a person."""
    open_count = (
        sa.select(sa.func.count())
        .where(
            interactions.INTERACTIONS.c.run_id == runs.RUNS.c.id,
            interactions.INTERACTIONS.c.status == InteractionStatus.PENDING,
        )
        .scalar_subquery()
    )
    stmt = (
        sa.select(runs.RUNS, open_count.label("waiting_for"))
        .order_by(runs.RUNS.c.created_at.desc(), runs.RUNS.c.id)
        .limit(limit)
    )
    with read_transaction(engine) as conn:
        rows = conn.execute(stmt).mappings().all()
    return [
        RunSummary(
            id=r["id"],
            workflow=r["workflow"],
            status=r["status"],
            started_by=r["started_by"],
            created_at=r["created_at"],
            finished_at=r["finished_at"],
            waiting_for=r["waiting_for"],
            channel=r["channel"],
        )
        for r in rows
    ]


def run_view(engine: Engine, run_id: str) -> RunView:
    """One run with its steps; NotFound (saying where to look) if there is none."""
    with read_transaction(engine) as conn:
        run = runs.load_run(conn, run_id)
    if run is None:
        raise NotFound(f"no run {run_id!r}; `opsloop runs` lists the recent ones")
    return run


def unfinished_runs(engine: Engine) -> list[str]:
    """Ids of every run that has not finished."""
    with read_transaction(engine) as conn:
        return runs.unfinished_run_ids(conn)


def open_interactions(engine: Engine, run_id: str | None = None) -> list[InteractionView]:
    """Interactions still waiting for a person, oldest first."""
    with read_transaction(engine) as conn:
        rows = interactions.pending_interactions(conn, run_id)
    return [interactions.interaction_view(r) for r in rows]


def interaction(engine: Engine, iid: str) -> InteractionView | None:
    with read_transaction(engine) as conn:
        row = interactions.load_interaction(conn, iid)
    return None if row is None else interactions.interaction_view(row)
