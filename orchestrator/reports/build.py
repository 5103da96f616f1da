"""A report of a window, read in one snapshot: every figure comes from an aggregate query
(`counts`, `run_figures`, `gate_figures`) or from the kept aggregates of whole days
(`rollup`), none from rows counted in Python."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from sqlalchemy.engine import Engine

from orchestrator.reports import gate_figures as people
from orchestrator.reports import rollup, run_figures
from orchestrator.reports.figures import Day, Report
from orchestrator.reports.window import DEFAULT_SINCE, Window
from storage.engine import read_transaction

if TYPE_CHECKING:  # the audience (access rules, open questions) only when a report has one
    from orchestrator.reports.audience import Audience


def build_report(
    engine: Engine,
    now: datetime,
    since: timedelta = DEFAULT_SINCE,
    workflows: tuple[str, ...] = (),
    audience: Audience | None = None,
) -> Report:
    """The figures of [now - since, now), limited to `workflows` if any are given and to
    the runs `audience` may see if given; ValueError for a window that is empty or longer
    than ten years."""
    window = Window.ending(now, since, workflows, audience)
    # Kept counts hold every run: a report for an audience counts its own.
    days = rollup.full_days(window) if audience is None else []
    rollup.ensure(engine, days)
    with read_transaction(engine) as conn:
        counted = rollup.window_counts(conn, window, days)
        runs = run_figures.run_figures(conn, window, counted)
        slowest = run_figures.slowest_steps(conn, window, counted)
        failing = run_figures.failing_steps(counted)
        per_day = run_figures.runs_per_day(counted)
        gates = people.gate_figures(conn, window, counted)
        decision_p50 = people.decision_overall(conn, window, counted)
        reminders, escalations = people.nudges(conn, window)
        waiting = people.waiting_now(conn, window, now)
        schedules = people.schedule_fires(conn, window)
    return Report(
        since=window.since, until=window.until, workflows_filter=window.workflows,
        runs=runs, slowest_steps=slowest, failing_steps=failing, gates=gates,
        decision_p50_s=decision_p50, reminders=reminders, escalations=escalations,
        waiting=waiting, schedules=schedules,
        days=_days(window, per_day, counted.decisions),
    )  # fmt: skip


def _days(
    window: Window, runs: dict[str, dict[str, int]], decisions: dict[str, float | None]
) -> tuple[Day, ...]:
    """Every UTC day the window touches, quiet days included (a chart needs the gaps)."""
    day, last = window.since.date(), (window.until - timedelta(microseconds=1)).date()
    days = []
    while day <= last:
        key = day.isoformat()
        days.append(Day(key, **runs.get(key, {}), decision_p50_s=decisions.get(key)))
        day += timedelta(days=1)
    return tuple(days)
