"""A report as a terminal reads it: key figures, then small aligned tables. Pure."""

from __future__ import annotations

from collections.abc import Sequence

from bot.durations import format_duration
from orchestrator.reports.figures import Report

WAITING_SHOWN = 20


def percent(rate: float | None) -> str:
    return "-" if rate is None else f"{rate * 100:.0f}%"


def table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """Columns padded to their widest cell; the last column is not padded."""
    cells = [list(map(str, header)), *([str(c) for c in row] for row in rows)]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    return "\n".join(
        "  ".join(c.ljust(w) for c, w in zip(r[:-1], widths, strict=False)) + "  " + r[-1]
        for r in cells
    )


def headline(report: Report) -> str:
    """One line: the window and the numbers people ask for first."""
    span = f"{report.since:%Y-%m-%d %H:%M} to {report.until:%Y-%m-%d %H:%M} UTC"
    only = f" ({', '.join(report.workflows_filter)})" if report.workflows_filter else ""
    return (
        f"opsloop report {span}{only}: {_runs(sum(r.total for r in report.runs))}, "
        f"{report.total('failed')} failed, success {percent(report.success_rate)}, "
        f"{len(report.waiting)} waiting for a person"
    )


def format_report(report: Report) -> str:
    """The whole report for `opsloop report` and the console front end."""
    parts = [headline(report), ""]
    runs = [(r.workflow, r.total, r.succeeded, r.failed, r.cancelled, r.running,
             percent(r.success_rate), format_duration(r.p50_s) or "-",
             format_duration(r.p95_s) or "-") for r in report.runs]  # fmt: skip
    parts += ["RUNS", table(["WORKFLOW", "RUNS", "OK", "FAILED", "CANCELLED", "RUNNING",
                             "SUCCESS", "P50", "P95"], runs) if runs else "  none", ""]  # fmt: skip
    if report.slowest_steps:
        rows = [(f"{s.workflow}.{s.step_id}", s.count, format_duration(s.p95_s))
                for s in report.slowest_steps]  # fmt: skip
        parts += ["SLOWEST STEPS", table(["STEP", "RUNS", "P95"], rows), ""]
    if report.failing_steps:
        rows = [(f"{f.workflow}.{f.step_id}", f.failures, f.last_run_id, f.last_error)
                for f in report.failing_steps]  # fmt: skip
        parts += ["FAILING STEPS", table(["STEP", "FAILED", "LAST RUN", "LAST ERROR"], rows), ""]
    if report.gates:
        rows = [(g.workflow, g.asked, g.approved, g.rejected, g.decided, g.by_deadline,
                 g.auto_approved, format_duration(g.decision_p50_s) or "-",
                 format_duration(g.decision_p90_s) or "-") for g in report.gates]  # fmt: skip
        parts += ["GATES", table(["WORKFLOW", "ASKED", "APPROVED", "REJECTED", "DECIDED",
                                  "BY DEADLINE", "AUTO", "DECISION P50", "P90"], rows)]  # fmt: skip
        parts += [f"automation {percent(report.automation_rate)}, reminders {report.reminders}, "
                  f"escalations {report.escalations}", ""]  # fmt: skip
    parts += _waiting(report)
    if report.schedules:
        rows = [(s.schedule_id, s.missed, s.skipped) for s in report.schedules]
        parts += ["SCHEDULES", table(["SCHEDULE", "MISSED", "SKIPPED"], rows), ""]
    return "\n".join(parts).rstrip()


def _waiting(report: Report) -> list[str]:
    if not report.waiting:
        return ["WAITING NOW  nothing waits for a person", ""]
    shown = report.waiting[:WAITING_SHOWN]
    rows = [(w.run_id, f"{w.workflow}.{w.step_id}", format_duration(w.age_s),
             ", ".join(w.waits_for) or "anyone") for w in shown]  # fmt: skip
    more = len(report.waiting) - WAITING_SHOWN
    tail = [f"... and {more} more (`opsloop pending`)"] if more > 0 else []
    return ["WAITING NOW (oldest first)", table(["RUN", "GATE", "AGE", "WAITS FOR"], rows),
            *tail, ""]  # fmt: skip


def _runs(n: int) -> str:
    return f"{n} run" if n == 1 else f"{n} runs"
