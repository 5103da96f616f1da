"""The columns reports read, as light table clauses: building the SQLModel models costs
more than the report itself takes to start (pydantic), and `opsloop report` must start
like `opsloop runs` (orchestrator/run_list.py). tests/test_read_commands_lean.py checks
each column against the models, so they cannot drift."""

from __future__ import annotations

import sqlalchemy as sa

from storage.types import JSONType, UtcDateTime

RUNS = sa.table(
    "workflow_run", sa.column("id", sa.String), sa.column("workflow", sa.String),
    sa.column("status", sa.String), sa.column("started_by", sa.String),
    sa.column("channel", sa.String), sa.column("created_at", UtcDateTime),
    sa.column("duration_ms", sa.BigInteger),
)  # fmt: skip
STEPS = sa.table(
    "step_run", sa.column("run_id", sa.String), sa.column("step_id", sa.String),
    sa.column("workflow", sa.String), sa.column("run_created_at", UtcDateTime),
    sa.column("status", sa.String), sa.column("error", sa.Text),
    sa.column("finished_at", UtcDateTime), sa.column("duration_ms", sa.BigInteger),
)  # fmt: skip
INTERACTIONS = sa.table(
    "interaction", sa.column("id", sa.String), sa.column("run_id", sa.String),
    sa.column("step_id", sa.String), sa.column("prompt", sa.Text),
    sa.column("purpose", sa.String), sa.column("workflow", sa.String),
    sa.column("status", sa.String), sa.column("answered_by", sa.String),
    sa.column("created_at", UtcDateTime), sa.column("decision_ms", sa.BigInteger),
    sa.column("allowed_users", JSONType), sa.column("allowed_groups", JSONType),
)  # fmt: skip
AUDIT = sa.table(
    "audit_log", sa.column("run_id", sa.String), sa.column("action", sa.String),
    sa.column("at", UtcDateTime), sa.column("detail", JSONType),
)  # fmt: skip
SCHEDULES = sa.table("schedule", sa.column("id", sa.String), sa.column("workflow", sa.String))
REPORT_DAY = sa.table("report_day", sa.column("day", sa.String), sa.column("part", sa.String),
                      sa.column("figures", sa.Text))  # fmt: skip
