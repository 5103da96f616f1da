"""What a report counts in a stretch of time, as values that add up over days: the counts
of closed days are kept (`orchestrator.reports.rollup`) and added to those of the rest,
counted here by the same queries, so a kept day and a counted day cannot differ.

Percentiles do not add up; they are read off the indexes for the whole window
(`run_figures`, `gate_figures`), with the number of values counted here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from orchestrator.reports.sql import utc_day
from orchestrator.reports.tables import INTERACTIONS, RUNS, STEPS
from orchestrator.reports.window import Window, unsought
from storage.statuses import SYSTEM, StepStatus
from storage.statuses import InteractionStatus as S

GATE_COUNTS = ("asked", "approved", "rejected", "decided", "by_deadline", "cancelled", "open",
               "timed")  # fmt: skip
_BY_PERSON = sa.or_(INTERACTIONS.c.answered_by.is_(None), INTERACTIONS.c.answered_by != SYSTEM)


@dataclass
class Counts:
    """Counts of a stretch of time, by the keys a report groups by:

    - runs: (day, workflow, status) -> [runs, runs with a duration]
    - steps: (workflow, step_id) -> finished steps with a duration
    - failing: (workflow, step_id) -> [failures, latest failure's finished_at (ISO), its
      run_id, its error]
    - gates: workflow -> {asked, approved, ..., timed (with a time to decision)}
    - decisions: day -> p50 of people's time to decision (s) that day (the part of the
      day inside the stretch)
    """

    runs: dict[tuple[str, str, str], list[int]] = field(default_factory=dict)
    steps: dict[tuple[str, str], int] = field(default_factory=dict)
    failing: dict[tuple[str, str], list[Any]] = field(default_factory=dict)
    gates: dict[str | None, dict[str, int]] = field(default_factory=dict)
    decisions: dict[str, float] = field(default_factory=dict)

    def add(self, other: Counts) -> None:
        """Add the counts of another stretch (one that does not overlap this one)."""
        for key, (n, timed) in other.runs.items():
            mine = self.runs.setdefault(key, [0, 0])
            mine[0], mine[1] = mine[0] + n, mine[1] + timed
        for key, n in other.steps.items():
            self.steps[key] = self.steps.get(key, 0) + n
        for key, (n, *latest) in other.failing.items():
            mine = self.failing.get(key)
            if mine is None:
                self.failing[key] = [n, *latest]
            else:
                newer = _latest_key(latest) > _latest_key(mine[1:])
                self.failing[key] = [mine[0] + n, *(latest if newer else mine[1:])]
        for workflow, figures in other.gates.items():
            mine = self.gates.setdefault(workflow, dict.fromkeys(GATE_COUNTS, 0))
            for name, n in figures.items():
                mine[name] += n
        self.decisions.update(other.decisions)


def _latest_key(latest: list[Any]) -> tuple[bool, str, str]:
    finished, run_id = latest[0], latest[1]
    return (finished is not None, finished or "", run_id)  # no end time: the oldest


Days = dict[str, "Counts"]  # a stretch's counts, by UTC day (YYYY-MM-DD)


def _day(days: Days, key: str) -> Counts:
    found = days.get(key)
    if found is None:
        found = days[key] = Counts()
    return found


def count_runs(conn: Connection, window: Window) -> Days:
    """Runs created in the window by day, workflow and status."""
    day = utc_day(RUNS.c.created_at)
    stmt = (
        sa.select(day, RUNS.c.workflow, RUNS.c.status, sa.func.count(),
                  sa.func.count(RUNS.c.duration_ms))
        .where(window.runs())
        .group_by(day, RUNS.c.workflow, RUNS.c.status)
    )  # fmt: skip
    days: Days = {}
    for d, w, s, n, t in conn.execute(stmt):
        _day(days, d).runs[(d, w, s)] = [n, t]
    return days


def count_steps(conn: Connection, window: Window) -> Days:
    """By day: finished steps with a duration by (workflow, step), and failures with the
    latest one."""
    d, day = STEPS.c.duration_ms, utc_day(STEPS.c.run_created_at)
    groups = (
        sa.select(day, STEPS.c.workflow, STEPS.c.step_id, sa.func.count(d))
        .where(window.steps(), d.is_not(None))
        .group_by(day, STEPS.c.workflow, STEPS.c.step_id)
    )
    days: Days = {}
    for key, w, s, n in conn.execute(groups):
        _day(days, key).steps[(w, s)] = n
    # Grouped by `unsought` columns: no index gives this order, so the few failed rows
    # are found by status instead of the planner walking a whole index for its order; in
    # a day or two (a window's partial days) by the window instead: the failed rows of
    # every day would outnumber it.
    short = window.until - window.since <= timedelta(days=2)
    group = [utc_day(unsought(STEPS.c.run_created_at)).label("day"),
             unsought(STEPS.c.workflow).label("workflow"),
             unsought(STEPS.c.step_id).label("step_id")]  # fmt: skip
    latest = sa.func.row_number().over(
        partition_by=group,
        order_by=(STEPS.c.finished_at.desc().nulls_last(), STEPS.c.run_id.desc()),
    )
    ranked = (
        sa.select(*group, STEPS.c.error, STEPS.c.run_id, STEPS.c.finished_at,
                  latest.label("rn"), sa.func.count().over(partition_by=group).label("n"))
        .where(window.steps(seek=short), STEPS.c.status == StepStatus.FAILED)
        .subquery()
    )  # fmt: skip
    for r in conn.execute(sa.select(ranked).where(ranked.c.rn == 1)).mappings():
        finished = r["finished_at"].isoformat() if r["finished_at"] is not None else None
        _day(days, r["day"]).failing[(r["workflow"], r["step_id"])] = [
            r["n"], finished, r["run_id"], r["error"]]  # fmt: skip
    return days


def _count(condition: sa.ColumnElement[bool]) -> sa.ColumnElement[int]:
    return sa.func.coalesce(sa.func.sum(sa.case((condition, 1), else_=0)), 0)


def count_gates(conn: Connection, window: Window) -> Days:
    """Gates asked in the window by day, workflow and how they closed (auto-approvals
    are in the audit log: `gate_figures`)."""
    status, workflow = INTERACTIONS.c.status, INTERACTIONS.c.workflow
    day = utc_day(INTERACTIONS.c.created_at).label("day")
    stmt = (
        sa.select(
            day, workflow, sa.func.count().label("asked"),
            _count(sa.and_(status == S.APPROVED, _BY_PERSON)).label("approved"),
            _count(sa.and_(status == S.REJECTED, _BY_PERSON)).label("rejected"),
            _count(sa.and_(status.in_([S.DECIDED, S.SUBMITTED]), _BY_PERSON)).label("decided"),
            _count(sa.and_(INTERACTIONS.c.answered_by == SYSTEM,
                           status != S.CANCELLED)).label("by_deadline"),
            _count(status == S.CANCELLED).label("cancelled"),
            _count(status == S.PENDING).label("open"),
        )
        .where(window.gates()).group_by(day, workflow)
    )  # fmt: skip
    days: Days = {}
    for row in conn.execute(stmt).mappings():
        figures = {k: int(row[k]) for k in GATE_COUNTS if k != "timed"}
        _day(days, row["day"]).gates[row["workflow"]] = {**figures, "timed": 0}
    # Counted apart, from ix_interaction_decision alone: SQLite computes a virtual
    # column it reads from the table, but not one it reads from an index.
    timed = sa.select(day, workflow, sa.func.count(INTERACTIONS.c.decision_ms))
    for key, name, n in conn.execute(timed.where(window.gates()).group_by(day, workflow)):
        _day(days, key).gates[name]["timed"] = n
    return days
