"""Read-only questions front ends ask: recent runs (orchestrator/run_list.py), open
interactions."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from orchestrator import interactions, runs
from orchestrator.errors import NotFound
from orchestrator.protocol import InteractionView, RunView
from orchestrator.run_list import RunSummary, recent_runs
from storage.engine import read_transaction
from storage.statuses import RunStatus


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


def moving_runs(engine: Engine) -> list[str]:
    """Ids of the unfinished runs that are not quietly waiting for a person (`waiting`:
    no step runs; such a run changes only by answers and deadlines, which are audited)."""
    moving = [str(s) for s in (RunStatus.PENDING, RunStatus.RUNNING)]
    with read_transaction(engine) as conn:
        rows = conn.execute(sa.select(runs.RUNS.c.id).where(runs.RUNS.c.status.in_(moving)))
        return [row[0] for row in rows]


def open_interactions(engine: Engine, run_id: str | None = None) -> list[InteractionView]:
    """Interactions still waiting for a person, oldest first."""
    with read_transaction(engine) as conn:
        rows = interactions.pending_interactions(conn, run_id)
    return [interactions.interaction_view(r) for r in rows]


def interaction(engine: Engine, iid: str) -> InteractionView | None:
    with read_transaction(engine) as conn:
        row = interactions.load_interaction(conn, iid)
    return None if row is None else interactions.interaction_view(row)


__all__ = [
    "RunSummary",
    "interaction",
    "moving_runs",
    "open_interactions",
    "recent_runs",
    "run_view",
    "unfinished_runs",
]
