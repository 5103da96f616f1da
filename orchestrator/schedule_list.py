"""The schedules as listed (`opsloop schedules`, `/ops schedules`, App Home), read without
the table models or the cron library: `opsloop schedules` starts like `opsloop runs`
(orchestrator/run_list.py). tests/test_read_commands_lean.py checks these light table
clauses against the models, so they cannot drift."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from storage.engine import read_transaction
from storage.types import JSONType, UtcDateTime


@dataclass(frozen=True)
class ScheduleView:
    """A schedule as listed: its definition, its next and last fire, and its state."""

    id: str
    workflow: str
    cron: str
    timezone: str
    params: dict[str, Any]
    channel: str | None
    overlap: str
    catchup_s: float
    pause_after_failures: int | None
    enabled: bool
    paused: bool
    paused_by: str | None
    paused_reason: str | None
    next_fire_at: datetime | None
    last_fired_at: datetime | None
    last_run_id: str | None
    last_run_status: str | None
    missed: int
    failures_in_row: int
    source: str | None
    version: int


_TYPES: dict[str, Any] = {"params": JSONType, "catchup_s": sa.Float, "enabled": sa.Boolean,
                          "paused": sa.Boolean, "next_fire_at": UtcDateTime,
                          "last_fired_at": UtcDateTime, "pause_after_failures": sa.Integer,
                          "missed": sa.Integer, "failures_in_row": sa.Integer,
                          "version": sa.Integer}  # fmt: skip
LISTED = sa.table("schedule", *(sa.column(name, _TYPES.get(name, sa.String))
                                for name in ScheduleView.__dataclass_fields__
                                if name != "last_run_status"))  # fmt: skip
_RUNS = sa.table("workflow_run", sa.column("id", sa.String), sa.column("status", sa.String))
LISTING = sa.select(LISTED, _RUNS.c.status.label("last_run_status")).select_from(
    LISTED.outerjoin(_RUNS, _RUNS.c.id == LISTED.c.last_run_id)
)


def schedule_view(row: Mapping[str, Any]) -> ScheduleView:
    """A row of LISTING as a ScheduleView."""
    return ScheduleView(**{name: row[name] for name in ScheduleView.__dataclass_fields__})


def list_schedules(engine: Engine) -> list[ScheduleView]:
    """Every schedule, those that fire soonest first, removed ones last."""
    with read_transaction(engine) as conn:
        rows = conn.execute(LISTING).mappings().all()
    views = [schedule_view(row) for row in rows]
    return sorted(views, key=lambda v: (not v.enabled, v.next_fire_at is None, v.next_fire_at
                                        or datetime.min, v.id))  # fmt: skip
