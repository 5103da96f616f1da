"""The run list (`opsloop runs`, `/ops runs`, App Home) read without the table models.

Building the SQLModel models costs more than SQLAlchemy itself (pydantic), and listing
runs needs seven columns: `opsloop runs` took 0.87 s where a script with SQLAlchemy
alone took 0.15 s (issue 16). These light table clauses name only what the list reads;
tests/test_cli_defects.py checks each against the models, so they cannot drift.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from storage.engine import read_transaction
from storage.statuses import InteractionStatus
from storage.types import UtcDateTime

RUNS = sa.table(
    "workflow_run", sa.column("id", sa.String), sa.column("workflow", sa.String),
    sa.column("status", sa.String), sa.column("started_by", sa.String),
    sa.column("created_at", UtcDateTime), sa.column("finished_at", UtcDateTime),
    sa.column("channel", sa.String),
)  # fmt: skip
INTERACTIONS = sa.table(
    "interaction", sa.column("run_id", sa.String), sa.column("status", sa.String)
)


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
            INTERACTIONS.c.run_id == RUNS.c.id,
            INTERACTIONS.c.status == InteractionStatus.PENDING,
        )
        .scalar_subquery()
    )
    stmt = (
        sa.select(*RUNS.c, open_count.label("waiting_for"))
        .order_by(RUNS.c.created_at.desc(), RUNS.c.id)
        .limit(limit)
    )
    with read_transaction(engine) as conn:
        rows = conn.execute(stmt).mappings().all()
    return [RunSummary(**row) for row in rows]
