"""Firing due schedules exactly once, across crashes, restarts and replicas.

One write transaction does everything for each fire (a batch of fires shares one): a
conditional UPDATE claims the due time (WHERE id, next_fire_at and version are what was
read) and moves the schedule to its next fire, and the same transaction inserts the run,
whose id is derived from (schedule, due time). So two replicas racing for a fire leave
one run (the loser's UPDATE matches no row), and a crash before the commit leaves the
fire due for the next check. Only after the commit does the engine's `started(run_id)`
kick the run; a run committed but never kicked (a crash just then) is an unfinished run,
which recovery continues.

Fires later than `catchup` (at least `LATE_OK_S`, the checking's own slack) are
counted as missed and audited, never run in a burst: of the fires a downtime skipped,
at most the newest runs, if it is recent enough.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from orchestrator import runs
from orchestrator.errors import OrchestratorError
from orchestrator.schedules import SCHEDULES, actor, due_filter, load
from orchestrator.storage_retry import storage_attempts
from orchestrator.workflow import cron
from orchestrator.workflow.definitions import Workflow
from orchestrator.workflow.params import coerce_params
from storage.engine import read_transaction, write_transaction
from storage.statuses import FINISHED_RUN

LATE_OK_S = 60.0  # a fire at most this late is on time, whatever `catchup` says
BATCH = 50  # fires committed together
MAX_COUNTED = 10_000  # missed fires counted one by one per check; beyond, the count stops
FRONT_END = "schedule"  # a scheduled run's front_end


@dataclass(frozen=True)
class Fire:
    """What one due time of one schedule came to.

    outcome: started | skipped (overlap) | missed (too late) | failed (the run could not
    start: workflow gone, params no longer valid) | lost (another process fired it)."""

    schedule_id: str
    due: datetime
    outcome: str
    run_id: str | None = None
    missed: int = 0
    cancelled: str | None = None  # the previous run, cancelled by overlap: cancel_previous
    # The due time whose run started (the newest on a catch-up); derived, so not compared.
    ran_for: datetime | None = dataclasses.field(default=None, compare=False)


@dataclass(frozen=True)
class _Plan:
    due: datetime  # the next_fire_at being claimed
    run_at: datetime | None  # the fire that runs, if one is recent enough
    missed: int
    following: datetime | None  # the next fire after now


def scheduled_run_id(schedule_id: str, due: datetime, *, manual: bool = False) -> str:
    """The run a fire starts: the same for every process that fires this due time."""
    key = f"{schedule_id}@{due.astimezone(UTC).isoformat()}{'#now' if manual else ''}"
    return "r-" + hashlib.sha256(key.encode()).hexdigest()[:10]


def fire_due(
    engine: Engine,
    workflows: Mapping[str, Workflow],
    now: datetime,
    *,
    started: Callable[[str], None],
    cancelled: Callable[[str], None] = lambda run_id: None,
    limit: int = 1000,
) -> list[Fire]:
    """Fire every schedule due at `now`; `started(run_id)` after each run is committed.

    `cancelled(run_id)` is told of a previous run that overlap: cancel_previous
    cancelled in the database (in the fire's transaction), so the engine can stop its
    processes and timers here. `workflows`: the current versions, by name."""
    with read_transaction(engine) as conn:
        rows = conn.execute(
            sa.select(SCHEDULES)
            .where(*due_filter(), SCHEDULES.c.next_fire_at <= now)
            .order_by(SCHEDULES.c.next_fire_at)
            .limit(limit)
        ).mappings().all()  # fmt: skip
    fires = []
    for first in range(0, len(rows), BATCH):
        fires += _fire(engine, workflows, rows[first : first + BATCH], now)
    # Kicked once every due fire is committed: the runs' first passes would otherwise
    # compete with the firing for the GIL and the database (bench/schedules.py).
    for fire in fires:
        if fire.cancelled:
            cancelled(fire.cancelled)
        if fire.outcome == "started" and fire.run_id:
            started(fire.run_id)
    return fires


def run_now(
    engine: Engine,
    workflows: Mapping[str, Workflow],
    schedule_id: str,
    by: str,
    now: datetime,
    *,
    started: Callable[[str], None],
) -> str:
    """Start a schedule's run now, as a fire would (same run insert), audited as `by`'s.

    Its next fire is not touched, and overlap does not apply: a person asked for it."""
    row = dataclasses.asdict(load(engine, schedule_id))
    if not row["enabled"]:
        raise OrchestratorError(f"schedule {row['id']} is no longer in any workflow file")
    workflow, values = _prepare(workflows, row)
    run_id = scheduled_run_id(row["id"], now, manual=True)
    for attempt in storage_attempts():
        with attempt, write_transaction(engine) as conn:
            conn.execute(
                sa.update(SCHEDULES)
                .where(SCHEDULES.c.id == row["id"])
                .values(last_run_id=run_id, version=SCHEDULES.c.version + 1)
            )
            _insert_run(conn, workflow, values, row, run_id, now)
            runs.audit(conn, by, "schedule.run_now", now=now, run_id=run_id, schedule=row["id"])
    started(run_id)
    return run_id


# ---------------------------------------------------------------- one fire


def _fire(
    engine: Engine, workflows: Mapping[str, Workflow], rows: Sequence[Mapping[str, Any]],
    now: datetime,
) -> list[Fire]:  # fmt: skip
    """Fire a batch of due schedules in one transaction: each fire's claim and its run's
    insert still commit together, and a fire another process claimed first is `lost`
    without undoing the others. One commit per batch, not per fire, is what lets a
    thousand schedules due at once start in seconds (bench/schedules.py)."""
    prepared = [(row, _plan(row, now), _start_of(workflows, row)) for row in rows]
    for attempt in storage_attempts():
        with attempt, write_transaction(engine) as conn:
            fires = [_claim(conn, row, plan, start, now) for row, plan, start in prepared]
    return fires


def _start_of(
    workflows: Mapping[str, Workflow], row: Mapping[str, Any]
) -> tuple[Workflow, dict[str, Any]] | str:
    try:
        return _prepare(workflows, row)
    except OrchestratorError as exc:
        return str(exc)


def _claim(
    conn: Connection,
    row: Mapping[str, Any],
    plan: _Plan,
    start: tuple[Workflow, dict[str, Any]] | str,
    now: datetime,
) -> Fire:
    sid, who = row["id"], actor(row["id"])
    previous = _unfinished(conn, row["last_run_id"])
    outcome = "missed" if plan.run_at is None else "started"
    if outcome == "started" and previous and row["overlap"] == "skip":
        outcome = "skipped"
    if outcome == "started" and isinstance(start, str):
        outcome = "failed"
    run_id = scheduled_run_id(sid, plan.run_at) if outcome == "started" and plan.run_at else None
    values: dict[str, Any] = {"next_fire_at": plan.following,
                              "missed": SCHEDULES.c.missed + plan.missed}  # fmt: skip
    if plan.run_at is not None:
        values["last_fired_at"] = plan.run_at
    if run_id is not None:
        values["last_run_id"] = run_id
    claimed = conn.execute(
        sa.update(SCHEDULES)
        .where(SCHEDULES.c.id == sid, SCHEDULES.c.next_fire_at == plan.due,
               SCHEDULES.c.version == row["version"])
        .values(**values, version=SCHEDULES.c.version + 1)
    ).rowcount  # fmt: skip
    if claimed != 1:
        return Fire(sid, plan.due, "lost")
    if plan.missed:
        runs.audit(conn, runs.SYSTEM, "schedule.missed", now=now, schedule=sid,
                   count=plan.missed, since=plan.due.isoformat())  # fmt: skip
    due = plan.run_at.isoformat() if plan.run_at else None
    if outcome == "skipped":
        reason = f"skipped: previous run {previous} still running"
        runs.audit(conn, who, "schedule.skipped", now=now, run_id=previous, schedule=sid,
                   due=due, reason=reason)  # fmt: skip
    if outcome == "failed":
        runs.audit(conn, who, "schedule.failed", now=now, schedule=sid, due=due, error=start)
    cancelled = None
    if run_id is not None and not isinstance(start, str):
        if previous and row["overlap"] == "cancel_previous":
            cancelled = previous if runs.cancel_run(conn, previous, who, now) is not None else None
        _insert_run(conn, *start, row, run_id, now, due=due)
    ran_for = plan.run_at if run_id is not None else None
    return Fire(sid, plan.due, outcome, run_id, plan.missed, cancelled, ran_for)


def _prepare(
    workflows: Mapping[str, Workflow], row: Mapping[str, Any]
) -> tuple[Workflow, dict[str, Any]]:
    """The workflow and typed params a run of this schedule starts with, or why it cannot."""
    workflow = workflows.get(row["workflow"])
    if workflow is None:
        raise OrchestratorError(f"workflow {row['workflow']!r} of schedule {row['id']} is gone")
    return workflow, coerce_params(workflow, row["params"] or {})


def _insert_run(
    conn: Connection, workflow: Workflow, values: Mapping[str, Any], row: Mapping[str, Any],
    run_id: str, now: datetime, **detail: Any,
) -> None:  # fmt: skip
    """What `Orchestrator.start_run` writes, with the schedule as the one who started it."""
    who = actor(row["id"])
    if workflow.text:
        runs.save_definition(conn, workflow.name, workflow.digest, workflow.text, now)
    runs.insert_run(
        conn, run_id=run_id, workflow=workflow.name, digest=workflow.digest, params=values,
        step_ids=[s.id for s in workflow.steps], started_by=who, front_end=FRONT_END,
        channel=row["channel"], rerun_of=None, now=now,
    )  # fmt: skip
    runs.audit(conn, who, "run.started", now=now, run_id=run_id, params=dict(values),
               schedule=row["id"], **detail)  # fmt: skip


def _unfinished(conn: Connection, run_id: str | None) -> str | None:
    if run_id is None:
        return None
    status = conn.execute(sa.select(runs.RUNS.c.status).where(runs.RUNS.c.id == run_id)).scalar()
    return run_id if status is not None and status not in FINISHED_RUN else None


# ---------------------------------------------------------------- catch-up


def _plan(row: Mapping[str, Any], now: datetime) -> _Plan:
    """Which fire of those due by `now` runs (the newest, if recent enough) and how many
    are missed; fires are walked one by one, at most `MAX_COUNTED` of the old ones."""
    due, window = row["next_fire_at"], timedelta(seconds=max(row["catchup_s"], LATE_OK_S))
    fires = functools.partial(cron.next_fire, row["cron"], row["timezone"])
    cutoff = now - window
    old = 0
    moment: datetime | None = due
    while moment is not None and moment < cutoff and old < MAX_COUNTED:
        old, moment = old + 1, fires(moment)
    if moment is not None and moment < cutoff:  # too many to count: go on from the cutoff
        moment = fires(cutoff - timedelta(microseconds=1))
    recent, run_at = 0, None
    while moment is not None and moment <= now:
        recent, run_at, moment = recent + 1, moment, fires(moment)
    return _Plan(due, run_at, old + max(recent - 1, 0), moment)
