"""Runs and steps of a window, aggregated by the database (see `orchestrator.reports.sql`)."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from orchestrator.reports.figures import ERROR_CHARS, FailingStep, SlowStep, WorkflowRuns
from orchestrator.reports.sql import SORTED, nth_values, utc_day
from orchestrator.reports.window import Window, unsought
from orchestrator.runs import RUNS, STEPS
from storage.statuses import RunStatus, StepStatus

TOP = 5  # slowest and failing steps listed

OUTCOME = {RunStatus.SUCCEEDED: "succeeded", RunStatus.FAILED: "failed",
           RunStatus.CANCELLED: "cancelled"}  # fmt: skip


def outcome(status: str) -> str:
    """A run status as a report counts it: unfinished ones are all `running`."""
    return OUTCOME.get(RunStatus(status), "running")


def run_figures(conn: Connection, window: Window) -> tuple[WorkflowRuns, ...]:
    """Per workflow: runs by outcome, and p50/p95 of finished runs' durations (the
    stored `duration_ms`, read off ix_workflow_run_duration)."""
    counts: dict[str, dict[str, Any]] = defaultdict(dict)
    timed: dict[str, int] = defaultdict(int)
    by_status = (
        sa.select(
            RUNS.c.workflow, RUNS.c.status, sa.func.count(), sa.func.count(RUNS.c.duration_ms)
        )
        .where(window.runs())
        .group_by(RUNS.c.workflow, RUNS.c.status)
    )
    for workflow, status, n, with_duration in conn.execute(by_status):
        key = outcome(status)
        counts[workflow][key] = counts[workflow].get(key, 0) + n
        timed[workflow] += with_duration
    named = [(w, n) for w, n in timed.items() if n]
    asks = [([RUNS.c.workflow == w, window.runs(seek=n <= SORTED)], n, p)
            for w, n in named for p in (50, 95)]  # fmt: skip
    values = iter(nth_values(conn, RUNS.c.duration_ms, asks))
    for workflow, _ in named:
        counts[workflow].update(p50_s=next(values) / 1000, p95_s=next(values) / 1000)
    return tuple(WorkflowRuns(workflow=w, **counts[w]) for w in sorted(counts))


def slowest_steps(conn: Connection, window: Window, top: int = TOP) -> tuple[SlowStep, ...]:
    """The steps with the longest p95 duration (finished ones, succeeded or failed): each
    (workflow, step) counted, then its p95 read off ix_step_run_duration."""
    d = STEPS.c.duration_ms
    groups = (
        sa.select(STEPS.c.workflow, STEPS.c.step_id, sa.func.count(d))
        .where(window.steps(), d.is_not(None))
        .group_by(STEPS.c.workflow, STEPS.c.step_id)
    )
    counted = conn.execute(groups).all()
    asks = [([STEPS.c.workflow == w, STEPS.c.step_id == s, window.steps(seek=n <= SORTED)], n, 95)
            for w, s, n in counted]  # fmt: skip
    p95s = nth_values(conn, d, asks)
    found = [SlowStep(w, s, n, p95 / 1000) for (w, s, n), p95 in zip(counted, p95s, strict=True)]
    found.sort(key=lambda s: (-s.p95_s, s.workflow, s.step_id))
    return tuple(found[:top])


def failing_steps(conn: Connection, window: Window, top: int = TOP) -> tuple[FailingStep, ...]:
    """Steps that failed most often, each with its latest failure's error."""
    # Grouped by `unsought` columns: no index gives this order, so the few failed rows
    # are found by status instead of the planner walking a whole index for its order.
    group = [
        unsought(STEPS.c.workflow).label("workflow"),
        unsought(STEPS.c.step_id).label("step_id"),
    ]
    latest = sa.func.row_number().over(
        partition_by=group, order_by=(STEPS.c.finished_at.desc(), STEPS.c.run_id.desc())
    )
    ranked = (
        sa.select(*group, STEPS.c.error, STEPS.c.run_id, latest.label("rn"),
                  sa.func.count().over(partition_by=group).label("failures"))
        .where(window.steps(seek=False), STEPS.c.status == StepStatus.FAILED)  # few: by status
        .subquery()
    )  # fmt: skip
    stmt = (
        sa.select(ranked)
        .where(ranked.c.rn == 1)
        .order_by(ranked.c.failures.desc(), ranked.c.workflow, ranked.c.step_id)
        .limit(top)
    )
    return tuple(
        FailingStep(r["workflow"], r["step_id"], r["failures"], trim(r["error"]), r["run_id"])
        for r in conn.execute(stmt).mappings()
    )


def runs_per_day(conn: Connection, window: Window) -> dict[str, dict[str, int]]:
    """{day: {outcome: runs created that UTC day}}."""
    day = utc_day(RUNS.c.created_at).label("day")
    stmt = (
        sa.select(day, RUNS.c.status, sa.func.count())
        .where(window.runs())
        .group_by(day, RUNS.c.status)
    )
    days: dict[str, dict[str, int]] = defaultdict(dict)
    for d, status, n in conn.execute(stmt):
        key = outcome(status)
        days[d][key] = days[d].get(key, 0) + n
    return days


def ms(seconds: float | None) -> float | None:
    """Seconds to the millisecond (what SQLite's julianday resolves)."""
    return None if seconds is None else round(float(seconds), 3)


def trim(text: str | None, limit: int = ERROR_CHARS) -> str:
    """One line (whitespace runs collapsed), cut to `limit` characters with an ellipsis."""
    line = " ".join((text or "").split())
    return line if len(line) <= limit else line[: limit - 1] + "…"
