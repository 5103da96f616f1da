"""Runs and steps of a window, aggregated by the database (see `orchestrator.reports.sql`)."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from orchestrator.reports.figures import ERROR_CHARS, FailingStep, SlowStep, WorkflowRuns
from orchestrator.reports.sql import percentiles, seconds_between, utc_day
from orchestrator.reports.window import Window
from orchestrator.runs import RUNS, STEPS
from storage.statuses import FINISHED_RUN, RunStatus, StepStatus

TOP = 5  # slowest and failing steps listed

OUTCOME = {RunStatus.SUCCEEDED: "succeeded", RunStatus.FAILED: "failed",
           RunStatus.CANCELLED: "cancelled"}  # fmt: skip


def outcome(status: str) -> str:
    """A run status as a report counts it: unfinished ones are all `running`."""
    return OUTCOME.get(RunStatus(status), "running")


def run_figures(conn: Connection, window: Window) -> tuple[WorkflowRuns, ...]:
    """Per workflow: runs by outcome, and p50/p95 of finished runs' durations."""
    counts: dict[str, dict[str, Any]] = defaultdict(dict)
    by_status = (
        sa.select(RUNS.c.workflow, RUNS.c.status, sa.func.count())
        .where(window.runs())
        .group_by(RUNS.c.workflow, RUNS.c.status)
    )
    for workflow, status, n in conn.execute(by_status):
        key = outcome(status)
        counts[workflow][key] = counts[workflow].get(key, 0) + n
    durations = sa.select(
        RUNS.c.workflow, seconds_between(RUNS.c.started_at, RUNS.c.finished_at).label("d")
    ).where(window.runs(), RUNS.c.status.in_(list(FINISHED_RUN)))
    for row in conn.execute(percentiles(durations, ["workflow"], "d", [50, 95])).mappings():
        counts[row["workflow"]].update(p50_s=ms(row["p50"]), p95_s=ms(row["p95"]))
    return tuple(WorkflowRuns(workflow=w, **counts[w]) for w in sorted(counts))


def slowest_steps(conn: Connection, window: Window, top: int = TOP) -> tuple[SlowStep, ...]:
    """The steps with the longest p95 duration (finished ones, succeeded or failed)."""
    rows = (
        sa.select(RUNS.c.workflow, STEPS.c.step_id,
                  seconds_between(STEPS.c.started_at, STEPS.c.finished_at).label("d"))
        .select_from(RUNS.join(STEPS, STEPS.c.run_id == RUNS.c.id))
        .where(window.runs(), STEPS.c.status.in_([StepStatus.SUCCEEDED, StepStatus.FAILED]))
    )  # fmt: skip
    ranked = percentiles(rows, ["workflow", "step_id"], "d", [95]).subquery()
    stmt = sa.select(ranked).order_by(ranked.c.p95.desc(), ranked.c.workflow, ranked.c.step_id)
    return tuple(
        SlowStep(r["workflow"], r["step_id"], r["n"], ms(r["p95"]) or 0.0)
        for r in conn.execute(stmt.limit(top)).mappings()
    )


def failing_steps(conn: Connection, window: Window, top: int = TOP) -> tuple[FailingStep, ...]:
    """Steps that failed most often, each with its latest failure's error."""
    group = [RUNS.c.workflow, STEPS.c.step_id]
    latest = sa.func.row_number().over(
        partition_by=group, order_by=(STEPS.c.finished_at.desc(), STEPS.c.run_id.desc())
    )
    ranked = (
        sa.select(*group, STEPS.c.error, STEPS.c.run_id, latest.label("rn"),
                  sa.func.count().over(partition_by=group).label("failures"))
        .select_from(RUNS.join(STEPS, STEPS.c.run_id == RUNS.c.id))
        .where(window.runs(), STEPS.c.status == StepStatus.FAILED)
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
