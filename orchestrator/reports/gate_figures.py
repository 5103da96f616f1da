"""People in a window: gates asked and how they closed, how long people took, reminders
and escalations (from the audit log), what waits now, schedules' missed and skipped fires."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from orchestrator.reports.counts import Counts
from orchestrator.reports.figures import GateFigures, ScheduleFires, Waiting
from orchestrator.reports.sql import nth_by, nth_values, utc_day
from orchestrator.reports.tables import AUDIT, INTERACTIONS, RUNS, SCHEDULES
from orchestrator.reports.window import Window, unsought
from storage.statuses import InteractionStatus as S


def _count(condition: sa.ColumnElement[bool]) -> sa.ColumnElement[int]:
    return sa.func.coalesce(sa.func.sum(sa.case((condition, 1), else_=0)), 0)


def gate_figures(conn: Connection, window: Window, counted: Counts) -> tuple[GateFigures, ...]:
    """Per workflow: gates asked in the window by how they closed (`counted`), the
    auto-approvals (audit log), decision p50/p90 (each read off
    ix_interaction_workflow_decision)."""
    took, workflow = INTERACTIONS.c.decision_ms, INTERACTIONS.c.workflow
    figures: dict[str, dict[str, Any]] = defaultdict(dict)
    for name, counts in counted.gates.items():
        figures[name].update({k: v for k, v in counts.items() if k != "timed"})
    for name, n in _audited(conn, window, "gate.auto_approved"):
        figures[name]["auto_approved"] = n
    named = [(w, c["timed"]) for w, c in counted.gates.items() if c.get("timed")]
    asks = [((w,), n, p) for w, n in named for p in (50, 90)]
    values = iter(nth_by(conn, took, [workflow], lambda seek: window.gates(seek=seek), asks))
    for name, _ in named:
        figures[name].update(decision_p50_s=next(values) / 1000,
                             decision_p90_s=next(values) / 1000)  # fmt: skip
    return tuple(GateFigures(workflow=w, **figures[w]) for w in sorted(figures))


def decisions_per_day(conn: Connection, window: Window) -> dict[str, float | None]:
    """{day: p50 of people's time to decision for gates asked that UTC day}: each day
    counted, then its few gates ranked, all days in one statement."""
    took, asked = INTERACTIONS.c.decision_ms, INTERACTIONS.c.created_at
    day = utc_day(asked).label("day")
    counts = conn.execute(
        sa.select(day, sa.func.count(took)).where(window.gates()).group_by(day)
    ).all()  # fmt: skip
    counted = [(key, n) for key, n in counts if n]
    asks = []
    for key, n in counted:  # the day's part of the window: one range an index can seek
        start = datetime.fromisoformat(key).replace(tzinfo=UTC)
        day_part = replace(window, since=max(window.since, start),
                           until=min(window.until, start + timedelta(days=1)))  # fmt: skip
        asks.append(([day_part.gates()], n, 50))
    p50s = nth_values(conn, took, asks)
    return {key: p50 / 1000 for (key, _), p50 in zip(counted, p50s, strict=True)}


def decision_overall(conn: Connection, window: Window, counted: Counts) -> float | None:
    """p50 of people's time to decision over every gate asked in the window."""
    n = sum(c.get("timed", 0) for c in counted.gates.values())
    if not n:
        return None
    [p50] = nth_by(conn, INTERACTIONS.c.decision_ms, [], lambda seek: window.gates(seek=seek),
                   [((), n, 50)])  # fmt: skip
    return p50 / 1000


def _audited(conn: Connection, window: Window, action: str) -> list[tuple[str, int]]:
    """(workflow, entries) for audit entries of `action` about runs, in the window."""
    stmt = (
        sa.select(RUNS.c.workflow, sa.func.count())
        .select_from(AUDIT.join(RUNS, RUNS.c.id == AUDIT.c.run_id))
        .where(AUDIT.c.action == action, window.during(AUDIT.c.at), window.of_workflows())
        .group_by(RUNS.c.workflow)
    )
    return [(w, n) for w, n in conn.execute(stmt)]


def nudges(conn: Connection, window: Window) -> tuple[int, int]:
    """(reminders, escalations) sent in the window, as the audit log has them."""
    reminded = sum(n for _, n in _audited(conn, window, "interaction.reminded"))
    escalated = sum(n for _, n in _audited(conn, window, "interaction.escalated"))
    return reminded, escalated


def waiting_now(conn: Connection, window: Window, now: datetime) -> tuple[Waiting, ...]:
    """Every gate open now (whenever it was asked), oldest first."""
    i = INTERACTIONS.c
    # The run's workflow looked up per open gate, and the gates found by status, then
    # sorted: walking ix_interaction_created_at for its order read every gate ever asked,
    # and PostgreSQL hashed every run to join them (50-100 ms at 100,000 runs).
    workflow = sa.select(RUNS.c.workflow).where(RUNS.c.id == i.run_id).scalar_subquery()
    stmt = (
        sa.select(i.id, i.run_id, workflow.label("workflow"), i.step_id, i.prompt, i.created_at,
                  i.allowed_users, i.allowed_groups)
        .where(i.status == S.PENDING)
        .order_by(unsought(i.created_at), i.id)
    )  # fmt: skip
    if window.workflows or window.audience is not None:
        stmt = stmt.where(i.run_id.in_(sa.select(RUNS.c.id).where(window.of_workflows())))
    return tuple(
        Waiting(r["id"], r["run_id"], r["workflow"], r["step_id"], r["prompt"], r["created_at"],
                round((now - r["created_at"]).total_seconds(), 3),
                (*(r["allowed_users"] or ()), *(r["allowed_groups"] or ())))
        for r in conn.execute(stmt).mappings()
    )  # fmt: skip


def schedule_fires(conn: Connection, window: Window) -> tuple[ScheduleFires, ...]:
    """Missed fires (a downtime longer than the catch-up) and skipped ones (overlap)."""
    schedule = AUDIT.c.detail["schedule"].as_string()
    missed = sa.func.coalesce(AUDIT.c.detail["count"].as_integer(), 1)
    stmt = (
        sa.select(schedule.label("id"),
                  _count(AUDIT.c.action == "schedule.skipped").label("skipped"),
                  sa.func.coalesce(sa.func.sum(sa.case(
                      (AUDIT.c.action == "schedule.missed", missed), else_=0)), 0).label("missed"))
        .where(AUDIT.c.action.in_(["schedule.missed", "schedule.skipped"]),
               window.during(AUDIT.c.at))
        .group_by(schedule).order_by(schedule)
    )  # fmt: skip
    if window.workflows:
        known = sa.select(SCHEDULES.c.id).where(SCHEDULES.c.workflow.in_(window.workflows))
        stmt = stmt.where(schedule.in_(known))
    return tuple(
        ScheduleFires(r["id"], missed=r["missed"], skipped=r["skipped"])
        for r in conn.execute(stmt).mappings()
    )
