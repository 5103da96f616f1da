"""A report's figures as plain typed values, and their JSON (a report step's outputs).

Durations are seconds (float, millisecond precision); percentiles are nearest-rank
(`orchestrator.reports.sql`); None where there is nothing to measure.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

ERROR_CHARS = 200  # a failing step's last error is trimmed to this


@dataclass(frozen=True)
class WorkflowRuns:
    """Runs of one workflow created in the window, by outcome; `running` counts the
    unfinished (pending, running, waiting for a person)."""

    workflow: str
    succeeded: int = 0
    failed: int = 0
    cancelled: int = 0
    running: int = 0
    p50_s: float | None = None  # duration of finished runs
    p95_s: float | None = None

    @property
    def total(self) -> int:
        return self.succeeded + self.failed + self.cancelled + self.running

    @property
    def success_rate(self) -> float | None:
        """Succeeded / finished; None while nothing finished."""
        finished = self.succeeded + self.failed + self.cancelled
        return None if finished == 0 else self.succeeded / finished


@dataclass(frozen=True)
class SlowStep:
    workflow: str
    step_id: str
    count: int  # finished (succeeded or failed) with both start and end
    p95_s: float


@dataclass(frozen=True)
class FailingStep:
    workflow: str
    step_id: str
    failures: int
    last_error: str  # the latest failure's, trimmed to ERROR_CHARS
    last_run_id: str


@dataclass(frozen=True)
class GateFigures:
    """Gates of one workflow asked in the window; `decision_*` is how long people took
    (opened -> answered by a person; deadlines and opsloop's own answers left out)."""

    workflow: str
    asked: int = 0
    approved: int = 0
    rejected: int = 0
    decided: int = 0  # a decision gate's option picked, or an input gate's form sent
    by_deadline: int = 0
    cancelled: int = 0
    open: int = 0
    auto_approved: int = 0  # approval steps whose auto_approve_if held (never asked)
    decision_p50_s: float | None = None
    decision_p90_s: float | None = None


@dataclass(frozen=True)
class Waiting:
    """A gate open now: who it waits for (users and groups; empty means anyone)."""

    interaction_id: str
    run_id: str
    workflow: str
    step_id: str
    prompt: str
    opened_at: datetime
    age_s: float
    waits_for: tuple[str, ...] = ()


@dataclass(frozen=True)
class ScheduleFires:
    schedule_id: str
    missed: int = 0
    skipped: int = 0


@dataclass(frozen=True)
class Day:
    """One UTC day of the window: runs created by outcome, and people's decision p50."""

    day: str  # YYYY-MM-DD
    succeeded: int = 0
    failed: int = 0
    cancelled: int = 0
    running: int = 0
    decision_p50_s: float | None = None


@dataclass(frozen=True)
class Report:
    """What happened in [since, until) and what waits now."""

    since: datetime
    until: datetime
    workflows_filter: tuple[str, ...] = ()
    runs: tuple[WorkflowRuns, ...] = ()
    slowest_steps: tuple[SlowStep, ...] = ()
    failing_steps: tuple[FailingStep, ...] = ()
    gates: tuple[GateFigures, ...] = ()
    decision_p50_s: float | None = None  # over every workflow's gates
    reminders: int = 0
    escalations: int = 0
    waiting: tuple[Waiting, ...] = ()
    schedules: tuple[ScheduleFires, ...] = ()
    days: tuple[Day, ...] = field(default=())

    def total(self, outcome: str) -> int:
        """Runs with this outcome (succeeded, failed, cancelled, running) over all workflows."""
        return sum(getattr(r, outcome) for r in self.runs)

    @property
    def success_rate(self) -> float | None:
        finished = sum(self.total(o) for o in ("succeeded", "failed", "cancelled"))
        return None if finished == 0 else self.total("succeeded") / finished

    @property
    def automation_rate(self) -> float | None:
        """Auto-approved / every approval (people's and automatic); None without approvals."""
        auto = sum(g.auto_approved for g in self.gates)
        approvals = auto + sum(g.approved for g in self.gates)
        return None if approvals == 0 else auto / approvals

    def to_json(self) -> dict[str, Any]:
        """The figures as JSON: the totals at the top (`failed`, `succeeded`, `waiting`...),
        so a condition can read `steps.digest.outputs.failed`; the lists below them."""
        data = asdict(self)
        data["since"], data["until"] = self.since.isoformat(), self.until.isoformat()
        data["workflows_filter"] = list(self.workflows_filter)
        for item, runs in zip(data["runs"], self.runs, strict=True):
            item.update(total=runs.total, success_rate=runs.success_rate)
        for item in data["waiting"]:
            item["opened_at"] = item["opened_at"].isoformat()
        totals = {o: self.total(o) for o in ("succeeded", "failed", "cancelled", "running")}
        return {
            **totals,
            "total": sum(totals.values()),
            "success_rate": self.success_rate,
            "automation_rate": self.automation_rate,
            "waiting_count": len(self.waiting),
            "gates_asked": sum(g.asked for g in self.gates),
            **data,
        }
