"""Schedules at run time: synced from the workflow files, listed, paused, resumed, and
paused by themselves after failed runs in a row.

The `schedule` table is the truth, as for deadlines: a schedule's identity comes from
its file (`ScheduleSpec.id`), and `sync` brings the table in line with the files in
one transaction, auditing each change, without touching what people decided (pause
state). Firing lives in `orchestrator.schedule_firing`. Each function takes the
present as `now` (the engine passes its clock's reading).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from orchestrator import runs
from orchestrator.errors import NotFound, OrchestratorError
from orchestrator.schedule_list import LISTED, LISTING, ScheduleView, schedule_view
from orchestrator.schedule_list import list_schedules as list_schedules  # listed there
from orchestrator.storage_retry import storage_attempts
from orchestrator.workflow import cron
from orchestrator.workflow.definitions import ScheduleSpec, Workflow
from storage.engine import dialect_insert, read_transaction, write_transaction
from storage.models import Schedule
from storage.statuses import RunStatus

SCHEDULES: sa.Table = Schedule.__table__  # type: ignore[attr-defined]
ACTOR_PREFIX = "schedule:"  # a scheduled run's started_by: "schedule:<id>"
_FROM_FILES = "workflow"  # the kind of the rows that workflow files own
_SPEC_COLUMNS = ("workflow", "cron", "timezone", "params", "channel", "overlap", "catchup_s",
                 "pause_after_failures")  # fmt: skip


class HasCron(Protocol):
    cron: str
    timezone: str


@dataclass(frozen=True)
class Change:
    """What `sync` did to one schedule: added, changed, restored or removed."""

    schedule_id: str
    action: str
    fields: tuple[str, ...] = ()


@dataclass(frozen=True)
class PauseNotice:
    """A schedule paused itself after failed runs in a row: say so in its channel."""

    schedule_id: str
    channel: str | None
    reason: str


def actor(schedule_id: str) -> str:
    """Who a scheduled run is started by, in runs and the audit log."""
    return f"{ACTOR_PREFIX}{schedule_id}"


def next_fire(spec: HasCron, after: datetime) -> datetime | None:
    """The first instant after `after` at which the schedule fires (its time zone, DST-safe)."""
    return cron.next_fire(spec.cron, spec.timezone, after)


# ---------------------------------------------------------------- sync


def sync(
    engine: Engine, workflows: Mapping[str, Workflow], now: datetime, by: str = runs.SYSTEM,
    *, prune: bool = True,
) -> list[Change]:  # fmt: skip
    """Bring the table in line with the files: add, update, restore, and (with `prune`)
    disable what the files no longer have; each change audited. Only a process that
    serves the database prunes: a CLI started with another workflows directory must not
    switch off the schedules it does not see."""
    desired = {s.id: (wf, s) for wf in workflows.values() for s in wf.schedules}
    for attempt in storage_attempts():
        with attempt, write_transaction(engine) as conn:
            current = {
                row["id"]: row
                for row in conn.execute(
                    sa.select(SCHEDULES).where(SCHEDULES.c.kind == _FROM_FILES)
                ).mappings()
            }
            changes = [
                _upsert(conn, wf, spec, current.get(sid), now, by)
                for sid, (wf, spec) in desired.items()
            ]
            changes += [
                _disable(conn, row, now, by)
                for sid, row in current.items()
                if prune and sid not in desired and row["enabled"]
            ]
    return [change for change in changes if change is not None]


def spec_values(workflow: Workflow, spec: ScheduleSpec) -> dict[str, Any]:
    """The columns a spec sets, as stored."""
    return {
        "workflow": workflow.name, "cron": spec.cron, "timezone": spec.timezone,
        "params": dict(spec.params), "channel": spec.channel, "overlap": spec.overlap,
        "catchup_s": spec.catchup_s, "pause_after_failures": spec.pause_after_failures,
    }  # fmt: skip


def _digest(values: Mapping[str, Any]) -> str:
    text = json.dumps({k: values[k] for k in _SPEC_COLUMNS}, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def _upsert(
    conn: Connection, wf: Workflow, spec: ScheduleSpec, row: Mapping[str, Any] | None,
    now: datetime, by: str,
) -> Change | None:  # fmt: skip
    values = spec_values(wf, spec)
    values.update(spec_digest=_digest(values), source=f"{wf.source}:{spec.line}")
    if row is None:
        inserted = conn.execute(
            dialect_insert(conn)(SCHEDULES)
            .values(id=spec.id, kind=_FROM_FILES, enabled=True, created_by=by, created_at=now,
                    next_fire_at=next_fire(spec, now), version=0, **values)
            .on_conflict_do_nothing()
            .returning(SCHEDULES.c.id)
        ).first()  # fmt: skip
        return _audited(conn, Change(spec.id, "added"), by, now) if inserted else None
    if row["spec_digest"] == values["spec_digest"] and row["enabled"]:
        if row["source"] != values["source"]:  # the file moved or lines shifted: no change
            _update(conn, row, {"source": values["source"]})
        return None
    fields = tuple(k for k in _SPEC_COLUMNS if row[k] != values[k])
    if not row["enabled"] or {"cron", "timezone"} & set(fields):
        values.update(enabled=True, next_fire_at=next_fire(spec, now))
    change = Change(spec.id, "changed" if row["enabled"] else "restored", fields)
    return _audited(conn, change, by, now) if _update(conn, row, values) else None


def _disable(conn: Connection, row: Mapping[str, Any], now: datetime, by: str) -> Change | None:
    if not _update(conn, row, {"enabled": False}):
        return None
    return _audited(conn, Change(row["id"], "removed"), by, now)


def _update(conn: Connection, row: Mapping[str, Any], values: Mapping[str, Any]) -> bool:
    """Change a row only if nobody changed it since it was read (another replica's sync)."""
    stmt = (
        sa.update(SCHEDULES)
        .where(SCHEDULES.c.id == row["id"], SCHEDULES.c.version == row["version"])
        .values(**values, version=SCHEDULES.c.version + 1)
    )
    return conn.execute(stmt).rowcount == 1


def _audited(conn: Connection, change: Change, by: str, now: datetime) -> Change:
    detail = {"fields": list(change.fields)} if change.fields else {}
    runs.audit(conn, by, f"schedule.{change.action}", now=now, schedule=change.schedule_id,
               **detail)  # fmt: skip
    return change


# ---------------------------------------------------------------- people


def pause(engine: Engine, schedule_id: str, by: str, reason: str, now: datetime) -> ScheduleView:
    """Stop a schedule firing until `resume`; audited with who and why."""
    values = {"paused": True, "paused_by": by, "paused_reason": reason or None, "paused_at": now}
    return _set_paused(engine, schedule_id, False, values, by, now, reason=reason)


def resume(engine: Engine, schedule_id: str, by: str, now: datetime) -> ScheduleView:
    """Let a paused schedule fire again from its next fire after `now` (nothing caught up)."""
    row = load(engine, schedule_id)
    values = {"paused": False, "paused_by": None, "paused_reason": None, "paused_at": None,
              "resumed_at": now, "failures_in_row": 0,
              "next_fire_at": next_fire(row, now)}  # fmt: skip
    return _set_paused(engine, schedule_id, True, values, by, now)


def _set_paused(
    engine: Engine, schedule_id: str, expect: bool, values: Mapping[str, Any], by: str,
    now: datetime, **detail: Any,
) -> ScheduleView:  # fmt: skip
    for attempt in storage_attempts():
        with attempt, write_transaction(engine) as conn:
            done = conn.execute(
                sa.update(SCHEDULES)
                .where(SCHEDULES.c.id == schedule_id, SCHEDULES.c.paused == expect)
                .values(**values, version=SCHEDULES.c.version + 1)
            ).rowcount  # fmt: skip
            action = "schedule.resumed" if expect else "schedule.paused"
            if done:
                runs.audit(conn, by, action, now=now, schedule=schedule_id, **detail)
    view = load(engine, schedule_id)
    if not done:
        state = f"paused by {view.paused_by}" if view.paused else "not paused"
        raise OrchestratorError(f"schedule {schedule_id} is already {state}")
    return view


# ---------------------------------------------------------------- circuit breaker


def run_finished(engine: Engine, run_id: str, now: datetime) -> PauseNotice | None:
    """Count a scheduled run's failures in a row; pause the schedule at its limit.

    The engine calls it when any run finishes (others are ignored). The count is read
    from the runs themselves (finished since the last resume, newest first), so calling
    it twice, or from two replicas, counts nothing twice."""
    for attempt in storage_attempts():
        with attempt, write_transaction(engine) as conn:
            notice = _count_failures(conn, run_id, now)
    return notice


def _count_failures(conn: Connection, run_id: str, now: datetime) -> PauseNotice | None:
    started_by = conn.execute(
        sa.select(runs.RUNS.c.started_by).where(runs.RUNS.c.id == run_id)
    ).scalar()
    if not started_by or not started_by.startswith(ACTOR_PREFIX):
        return None
    row = conn.execute(
        sa.select(SCHEDULES).where(SCHEDULES.c.id == started_by[len(ACTOR_PREFIX) :])
    ).mappings().first()  # fmt: skip
    if row is None:
        return None
    limit = row["pause_after_failures"] or 100
    streak = _failures_in_row(conn, started_by, row["resumed_at"], limit)
    conn.execute(sa.update(SCHEDULES).where(SCHEDULES.c.id == row["id"])
                 .values(failures_in_row=streak))  # fmt: skip
    if row["pause_after_failures"] is None or streak < limit:
        return None
    reason = f"{streak} failed runs in a row (pause_after_failures: {limit}); last {run_id}"
    paused = conn.execute(
        sa.update(SCHEDULES)
        .where(SCHEDULES.c.id == row["id"], SCHEDULES.c.paused.is_(False))
        .values(paused=True, paused_by=runs.SYSTEM, paused_reason=reason, paused_at=now,
                version=SCHEDULES.c.version + 1)
    ).rowcount  # fmt: skip
    if not paused:
        return None
    runs.audit(conn, runs.SYSTEM, "schedule.paused", now=now, run_id=run_id,
               schedule=row["id"], reason=reason)  # fmt: skip
    return PauseNotice(row["id"], row["channel"], reason)


def _failures_in_row(conn: Connection, started_by: str, since: datetime | None, limit: int) -> int:
    finished = [RunStatus.SUCCEEDED, RunStatus.FAILED]
    stmt = sa.select(runs.RUNS.c.status).where(
        runs.RUNS.c.started_by == started_by, runs.RUNS.c.status.in_(finished)
    )
    if since is not None:
        stmt = stmt.where(runs.RUNS.c.created_at >= since)
    statuses = conn.execute(
        stmt.order_by(runs.RUNS.c.created_at.desc(), runs.RUNS.c.id.desc()).limit(limit)
    ).scalars()
    streak = 0
    for status in statuses:
        if status != RunStatus.FAILED:
            break
        streak += 1
    return streak


# ---------------------------------------------------------------- reading


def load(engine: Engine, schedule_id: str) -> ScheduleView:
    """One schedule; NotFound lists what there is."""
    with read_transaction(engine) as conn:
        row = conn.execute(LISTING.where(LISTED.c.id == schedule_id)).mappings().first()
        if row is None:
            known = conn.execute(sa.select(SCHEDULES.c.id).order_by(SCHEDULES.c.id)).scalars()
            listed = ", ".join(known) or "none (add schedules: to a workflow file)"
            raise NotFound(f"no schedule {schedule_id!r}; schedules: {listed}")
    return schedule_view(row)


def next_due(engine: Engine) -> datetime | None:
    """When the next schedule falls due (for the engine's timer), or None."""
    with read_transaction(engine) as conn:
        return conn.execute(
            sa.select(sa.func.min(SCHEDULES.c.next_fire_at)).where(*due_filter())
        ).scalar()


def due_filter() -> tuple[Any, ...]:
    """The schedules that may fire: from files, still in one, not paused."""
    return (SCHEDULES.c.kind == _FROM_FILES, SCHEDULES.c.enabled.is_(True),
            SCHEDULES.c.paused.is_(False))  # fmt: skip
