"""Counts read from the database at scrape time, for the metrics endpoint.

Gauges come from here rather than from counters kept in memory, so every replica
reports the same values and a restart loses nothing. Each query is one GROUP BY over
an indexed status column (or a small table), cheap at a scrape every 15-60 s.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from orchestrator import interactions, replicas, runs
from orchestrator.schedules import ACTOR_PREFIX, SCHEDULES, actor
from storage.engine import read_transaction
from storage.statuses import InteractionStatus, RunStatus

ACTIVE = (RunStatus.RUNNING, RunStatus.WAITING)
SCHEDULE_EVENTS = ("schedule.skipped", "schedule.failed")


@dataclass(frozen=True)
class Stats:
    runs_active: dict[tuple[str, str], int]  # (workflow, status) -> runs
    gates_pending: dict[tuple[str, str], int]  # (workflow, kind) -> open questions
    oldest_gate_s: dict[str, float]  # workflow -> age of its oldest open question
    schedule_missed: dict[str, int]  # workflow -> fires missed while no process ran
    schedule_fires: dict[tuple[str, str], int]  # (workflow, started|skipped|failed) -> fires
    replicas_alive: int = 0  # processes serving the database that swept recently


def snapshot(engine: Engine, now: datetime) -> Stats:
    """Everything above, read in one transaction."""
    r, i, s = runs.RUNS, interactions.INTERACTIONS, SCHEDULES
    audit = runs.AUDIT
    with read_transaction(engine) as conn:
        active = conn.execute(
            sa.select(r.c.workflow, r.c.status, sa.func.count())
            .where(r.c.status.in_(ACTIVE)).group_by(r.c.workflow, r.c.status)
        ).all()  # fmt: skip
        pending = conn.execute(
            sa.select(r.c.workflow, i.c.kind, sa.func.count(), sa.func.min(i.c.created_at))
            .join(r, r.c.id == i.c.run_id)
            .where(i.c.status == InteractionStatus.PENDING).group_by(r.c.workflow, i.c.kind)
        ).all()  # fmt: skip
        started = conn.execute(
            sa.select(r.c.workflow, sa.func.count())
            .where(r.c.started_by.startswith(ACTOR_PREFIX)).group_by(r.c.workflow)
        ).all()  # fmt: skip
        schedules = conn.execute(sa.select(s.c.id, s.c.workflow, s.c.missed)).all()
        events = conn.execute(
            sa.select(audit.c.actor, audit.c.action, sa.func.count())
            .where(audit.c.action.in_(SCHEDULE_EVENTS)).group_by(audit.c.actor, audit.c.action)
        ).all()  # fmt: skip
        alive = replicas.alive(conn, now)
    oldest: dict[str, float] = {}
    for workflow, _kind, _n, first in pending:
        if first is not None:
            age = (now - first).total_seconds()
            oldest[workflow] = max(oldest.get(workflow, 0.0), age)
    workflow_of = {actor(sid): wf for sid, wf, _ in schedules}
    missed: dict[str, int] = {}
    for _sid, wf, n in schedules:
        missed[wf] = missed.get(wf, 0) + int(n or 0)
    fires = {(wf, "started"): n for wf, n in started}
    for who, action, n in events:
        key = (workflow_of.get(who, ""), action.removeprefix("schedule."))
        fires[key] = fires.get(key, 0) + n
    return Stats(
        runs_active={(w, st): n for w, st, n in active},
        gates_pending={(w, k): n for w, k, n, _ in pending},
        oldest_gate_s=oldest,
        schedule_missed=missed,
        schedule_fires=fires,
        replicas_alive=alive,
    )
