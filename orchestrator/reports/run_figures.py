"""Runs and steps of a window: the counts (`orchestrator.reports.counts`) and the
percentiles read off the indexes (`orchestrator.reports.sql`)."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from sqlalchemy.engine import Connection

from orchestrator.reports.counts import Counts
from orchestrator.reports.figures import ERROR_CHARS, FailingStep, SlowStep, WorkflowRuns
from orchestrator.reports.sql import nth_by
from orchestrator.reports.tables import RUNS, STEPS
from orchestrator.reports.window import Window
from storage.statuses import RunStatus

TOP = 5  # slowest and failing steps listed

OUTCOME = {RunStatus.SUCCEEDED: "succeeded", RunStatus.FAILED: "failed",
           RunStatus.CANCELLED: "cancelled"}  # fmt: skip


def outcome(status: str) -> str:
    """A run status as a report counts it: unfinished ones are all `running`."""
    return OUTCOME.get(RunStatus(status), "running")


def run_figures(conn: Connection, window: Window, counted: Counts) -> tuple[WorkflowRuns, ...]:
    """Per workflow: runs by outcome, and p50/p95 of finished runs' durations (the
    stored `duration_ms`, read off ix_workflow_run_duration)."""
    counts: dict[str, dict[str, Any]] = defaultdict(dict)
    timed: dict[str, int] = defaultdict(int)
    for (_, workflow, status), (n, with_duration) in counted.runs.items():
        key = outcome(status)
        counts[workflow][key] = counts[workflow].get(key, 0) + n
        timed[workflow] += with_duration
    named = [(w, n) for w, n in sorted(timed.items()) if n]
    asks = [((w,), n, p) for w, n in named for p in (50, 95)]
    values = iter(nth_by(conn, RUNS.c.duration_ms, [RUNS.c.workflow],
                         lambda seek: window.runs(seek=seek), asks))  # fmt: skip
    for workflow, _ in named:
        counts[workflow].update(p50_s=next(values) / 1000, p95_s=next(values) / 1000)
    return tuple(WorkflowRuns(workflow=w, **counts[w]) for w in sorted(counts))


def slowest_steps(
    conn: Connection, window: Window, counted: Counts, top: int = TOP
) -> tuple[SlowStep, ...]:
    """The steps with the longest p95 duration (finished ones, succeeded or failed): each
    (workflow, step)'s p95 read off ix_step_run_duration."""
    d = STEPS.c.duration_ms
    groups = [(w, s, n) for (w, s), n in sorted(counted.steps.items(), key=_key) if n]
    p95s = nth_by(
        conn,
        d,
        [STEPS.c.workflow, STEPS.c.step_id],
        lambda seek: window.steps(seek=seek),
        [((w, s), n, 95) for w, s, n in groups],
    )
    found = [SlowStep(w, s, n, p95 / 1000) for (w, s, n), p95 in zip(groups, p95s, strict=True)]
    found.sort(key=lambda s: (-s.p95_s, s.workflow or "", s.step_id))
    return tuple(found[:top])


def _key(item: tuple[tuple[str | None, str], Any]) -> tuple[str, str]:
    (workflow, step), _ = item
    return (workflow or "", step)


def failing_steps(counted: Counts, top: int = TOP) -> tuple[FailingStep, ...]:
    """Steps that failed most often, each with its latest failure's error."""
    ranked = sorted(counted.failing.items(), key=lambda item: (-item[1][0], *_key(item)))
    return tuple(FailingStep(w, s, n, trim(error), run_id)
                 for (w, s), (n, _, run_id, error) in ranked[:top])  # fmt: skip


def runs_per_day(counted: Counts) -> dict[str, dict[str, int]]:
    """{day: {outcome: runs created that UTC day}}."""
    days: dict[str, dict[str, int]] = defaultdict(dict)
    for (day, _, status), (n, _) in counted.runs.items():
        key = outcome(status)
        days[day][key] = days[day].get(key, 0) + n
    return days


def ms(seconds: float | None) -> float | None:
    """Seconds to the millisecond (what SQLite's julianday resolves)."""
    return None if seconds is None else round(float(seconds), 3)


def trim(text: str | None, limit: int = ERROR_CHARS) -> str:
    """One line (whitespace runs collapsed), cut to `limit` characters with an ellipsis."""
    line = " ".join((text or "").split())
    return line if len(line) <= limit else line[: limit - 1] + "…"
