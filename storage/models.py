"""The tables opsloop keeps: runs, steps, interactions, the audit log, schedules.

Every row that people or timers race for (a step, an interaction, a run) has a
`status` column and a `version` counter, so "take this row only if it is still
pending" is one conditional UPDATE (see `storage.claims`). Times are aware UTC in and
out (`storage.types.UtcDateTime`); a naive datetime is refused.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

import storage.checkpoint_models  # noqa: F401  (its tables belong to the same metadata)
from storage.statuses import InteractionStatus, OutboxStatus, RunStatus, StepStatus
from storage.types import JSONType, UtcDateTime, utcnow


def _json(nullable: bool = False) -> Any:
    return Field(default=None, sa_type=JSONType, nullable=nullable)


def _time(index: bool = False) -> Any:
    """A nullable timestamp column, aware UTC in and out."""
    return Field(default=None, sa_type=UtcDateTime, nullable=True, index=index)


def _stamp(index: bool = False) -> Any:
    """A required timestamp column that defaults to the moment the row is built."""
    return Field(default_factory=utcnow, sa_type=UtcDateTime, nullable=False, index=index)


def _duration(when: str, start: str = "started_at", end: str = "finished_at") -> Any:
    """end - start in ms for rows where `when` holds: a column the database generates
    (migration 0010 writes its SQL for each database; this is SQLite's)."""
    expression = (f"CASE WHEN {when} THEN CAST(round((julianday({end}) - julianday({start}))"
                  " * 86400000) AS INTEGER) END")  # fmt: skip
    return Field(default=None, sa_column=sa.Column(sa.BigInteger, sa.Computed(expression),
                                                   nullable=True))  # fmt: skip


class WorkflowRun(SQLModel, table=True):
    __tablename__ = "workflow_run"
    # Reports read runs by when they were created (migration 0009).
    __table_args__ = (
        sa.Index("ix_workflow_run_created_at", "created_at", "workflow"),
        # 0010: durations ranked; a window's runs counted from the index alone.
        sa.Index("ix_workflow_run_duration", "workflow", "duration_ms", "created_at"),
        sa.Index("ix_workflow_run_window", "created_at", "workflow", "status", "duration_ms"),
    )

    id: str = Field(primary_key=True, max_length=64)
    workflow: str = Field(index=True, max_length=200)
    definition_hash: str = Field(max_length=64)
    params: dict[str, Any] = Field(default_factory=dict, sa_type=JSONType, nullable=False)
    started_by: str = Field(max_length=200)
    front_end: str = Field(default="cli", max_length=32)
    channel: str | None = Field(default=None, max_length=200)
    thread_ts: str | None = Field(default=None, max_length=64)
    status: str = Field(default=RunStatus.PENDING, index=True, max_length=16)
    error: str | None = Field(default=None, sa_type=sa.Text)
    rerun_of: str | None = Field(default=None, max_length=64)
    version: int = Field(default=0)
    created_at: datetime = _stamp()
    started_at: datetime | None = _time()
    finished_at: datetime | None = _time()
    updated_at: datetime = _stamp()
    duration_ms: int | None = _duration("status IN ('succeeded', 'failed', 'cancelled')")


class WorkflowDefinition(SQLModel, table=True):
    """A workflow's source text by its sha256: what a run started with (workflow_run's
    definition_hash), so editing the file never changes a run already under way."""

    __tablename__ = "workflow_definition"

    digest: str = Field(primary_key=True, max_length=64)
    workflow: str = Field(max_length=200)
    text: str = Field(sa_type=sa.Text)
    created_at: datetime = _stamp()


# Partial index predicates on step_run (PostgreSQL; SQLite indexes every row).
_FINISHED = sa.text("duration_ms IS NOT NULL")
_FINISHED_OR_FAILED = sa.text("duration_ms IS NOT NULL OR status = 'failed'")
_SOUGHT = sa.text("status IN ('running', 'waiting', 'failed')")


class StepRun(SQLModel, table=True):
    __tablename__ = "step_run"
    __table_args__ = (
        sa.UniqueConstraint("run_id", "step_id", name="uq_step_run_run_step"),
        # Reports read a step's percentiles off these (migration 0010). On PostgreSQL they
        # hold finished (or failed) steps only, and `status` only the statuses sought across runs
        # (a replica's running steps, failures): a step's claim then adds an entry to
        # three indexes instead of seven (migration 0024, docs/storage.md).
        sa.Index("ix_step_run_window", "workflow", "step_id", "run_created_at", "duration_ms",
                 postgresql_where=_FINISHED),
        # And failed steps: a step failed before it started has no duration, and a
        # report finds a short window's failures by this index.
        sa.Index("ix_step_run_created", "run_created_at", "workflow", "step_id", "duration_ms",
                 postgresql_where=_FINISHED_OR_FAILED),
        sa.Index("ix_step_run_duration", "workflow", "step_id", "duration_ms", "run_created_at",
                 postgresql_where=_FINISHED),
        sa.Index("ix_step_run_status", "status", postgresql_where=_SOUGHT),
    )  # fmt: skip

    id: int | None = Field(default=None, primary_key=True)
    # Found by run through uq_step_run_run_step (its first column).
    run_id: str = Field(foreign_key="workflow_run.id", max_length=64)
    step_id: str = Field(max_length=200)
    status: str = Field(default=StepStatus.PENDING, max_length=16)
    attempts: int = Field(default=0)
    outputs: dict[str, Any] | None = _json(nullable=True)
    error: str | None = Field(default=None, sa_type=sa.Text)
    # The LangGraph thread that holds this step's checkpoints.
    thread_id: str | None = Field(default=None, max_length=200)
    # Which replica runs the step, and until when its claim holds.
    owner: str | None = Field(default=None, max_length=200)
    lease_until: datetime | None = _time()
    # Set while a step resumed outside a pass (an answer, recovery) waits for room in its
    # workflow's share, before its code runs again: recovery resumes it as not started.
    held_at: datetime | None = _time()
    version: int = Field(default=0)
    started_at: datetime | None = _time()
    finished_at: datetime | None = _time()
    updated_at: datetime = _stamp()
    # The run's workflow and creation time, copied with the step so reports need no join.
    workflow: str | None = Field(default=None, max_length=200)
    run_created_at: datetime | None = _time()
    duration_ms: int | None = _duration("status IN ('succeeded', 'failed')")


class Interaction(SQLModel, table=True):
    """A request for a person: approve/reject, pick an option, or give input."""

    __tablename__ = "interaction"
    __table_args__ = (
        sa.Index("ix_interaction_created_at", "created_at"),
        # Reports read times to decision off these (migration 0010).
        sa.Index("ix_interaction_decision", "created_at", "purpose", "workflow", "decision_ms"),
        sa.Index("ix_interaction_decision_rank", "purpose", "decision_ms", "created_at"),
        sa.Index(
            "ix_interaction_workflow_decision", "workflow", "purpose", "decision_ms", "created_at"
        ),
    )

    id: str = Field(primary_key=True, max_length=64)
    run_id: str = Field(foreign_key="workflow_run.id", index=True, max_length=64)
    step_id: str = Field(max_length=200)
    kind: str = Field(max_length=16)
    # "gate" (a step asks), or "recovery" (retry/skip/fail a step a crash interrupted).
    purpose: str = Field(default="gate", max_length=16, sa_column_kwargs={"server_default": "gate"})
    # The LangGraph interrupt that an answer resumes.
    interrupt_id: str | None = Field(default=None, max_length=64)
    prompt: str = Field(sa_type=sa.Text)
    options: list[Any] | None = _json(nullable=True)
    fields: list[Any] | None = _json(nullable=True)
    allowed_users: list[str] | None = _json(nullable=True)
    allowed_groups: list[str] | None = _json(nullable=True)
    required_approvals: int = Field(default=1)
    allow_requester: bool = Field(default=False)
    status: str = Field(default=InteractionStatus.PENDING, index=True, max_length=16)
    responses: list[Any] = Field(default_factory=list, sa_type=JSONType, nullable=False)
    answer: Any | None = _json(nullable=True)
    answered_by: str | None = Field(default=None, max_length=200)
    answered_at: datetime | None = _time()
    workflow: str | None = Field(default=None, max_length=200)  # the run's, for reports
    # How long a person took to answer (not opsloop at a deadline); reports read it.
    decision_ms: int | None = _duration(
        "answered_at IS NOT NULL AND status IN ('approved', 'rejected', 'decided', 'submitted')"
        " AND (answered_by IS NULL OR answered_by <> 'opsloop')",
        "created_at",
        "answered_at",
    )
    deadline: datetime | None = _time(index=True)
    on_deadline: str | None = Field(default=None, max_length=32)
    remind_every_s: int | None = Field(default=None)
    next_reminder_at: datetime | None = _time(index=True)  # the timers' window (0013)
    # The chat message the interaction lives in.
    channel: str | None = Field(default=None, max_length=200)
    message_ts: str | None = Field(default=None, max_length=64)
    # Where the question is posted: thread | channel | dm.
    notify: str = Field(
        default="thread", max_length=16, sa_column_kwargs={"server_default": "thread"}
    )
    # Mention these people ({"users": [...], "groups": [...]}) if still open at escalate_at.
    escalate_at: datetime | None = _time(index=True)
    escalate_to: dict[str, Any] | None = _json(nullable=True)
    escalated_at: datetime | None = _time()
    # Params an approver may change while approving.
    editable_params: list[str] | None = _json(nullable=True)
    version: int = Field(default=0)
    created_at: datetime = _stamp()


class AuditEntry(SQLModel, table=True):
    """Append-only: who did what, when, to which run or interaction."""

    __tablename__ = "audit_log"
    __table_args__ = (sa.Index("ix_audit_log_action_at", "action", "at"),)

    id: int | None = Field(default=None, primary_key=True)
    at: datetime = _stamp(index=True)
    actor: str = Field(max_length=200)
    action: str = Field(max_length=64)
    run_id: str | None = Field(default=None, index=True, max_length=64)
    interaction_id: str | None = Field(default=None, index=True, max_length=64)
    detail: dict[str, Any] = Field(default_factory=dict, sa_type=JSONType, nullable=False)


class Schedule(SQLModel, table=True):
    """A workflow started, or a report posted, on a cron schedule.

    `next_fire_at` and `version` are what a fire claims: one conditional UPDATE moves
    them on, so one process fires each due time. Schedules from workflow files carry
    `source` (file:line) and `spec_digest` (what sync compares); `enabled` is false for
    one whose file no longer has it. Pause state belongs to people and survives edits.
    """

    __tablename__ = "schedule"

    id: str = Field(primary_key=True, max_length=200)
    kind: str = Field(default="workflow", max_length=16)  # workflow | report
    workflow: str | None = Field(default=None, max_length=200)
    params: dict[str, Any] = Field(default_factory=dict, sa_type=JSONType, nullable=False)
    cron: str = Field(max_length=200)
    timezone: str = Field(default="UTC", max_length=64)
    channel: str | None = Field(default=None, max_length=200)
    enabled: bool = Field(default=True)
    created_by: str = Field(max_length=200)
    created_at: datetime = _stamp()
    last_fired_at: datetime | None = _time()
    next_fire_at: datetime | None = _time(index=True)
    version: int = Field(default=0)
    # skip | allow | cancel_previous: what a fire does while the previous run still runs.
    overlap: str = Field(default="skip", max_length=16, sa_column_kwargs={"server_default": "skip"})
    catchup_s: float = Field(default=0.0, sa_column_kwargs={"server_default": "0"})
    pause_after_failures: int | None = Field(default=None)
    paused: bool = Field(default=False, sa_column_kwargs={"server_default": sa.false()})
    paused_by: str | None = Field(default=None, max_length=200)
    paused_reason: str | None = Field(default=None, sa_type=sa.Text)
    paused_at: datetime | None = Field(default=None, sa_type=UtcDateTime())
    # Failed runs in a row are counted from the runs started after this.
    resumed_at: datetime | None = Field(default=None, sa_type=UtcDateTime())
    failures_in_row: int = Field(default=0, sa_column_kwargs={"server_default": "0"})
    missed: int = Field(default=0, sa_column_kwargs={"server_default": "0"})
    last_run_id: str | None = Field(default=None, max_length=64)
    source: str | None = Field(default=None, max_length=1000)
    spec_digest: str | None = Field(default=None, max_length=64)


class OutboxMessage(SQLModel, table=True):
    """A chat message to post or edit, persisted before it is sent.

    `id` is the message's idempotency key ("board:<run>", "gate:<interaction>"):
    asking twice for the same message is one row, and asking again for an edit
    while it waits only bumps `version`, so edits coalesce. The content is
    rendered from the current state when the row is sent, never stored.
    """

    __tablename__ = "outbox"

    id: str = Field(primary_key=True, max_length=255)
    run_id: str | None = Field(default=None, index=True, max_length=64)
    kind: str = Field(max_length=32)
    channel: str | None = Field(default=None, max_length=200)
    after: str | None = Field(default=None, max_length=255)  # a row that must be sent first
    payload: dict[str, Any] = Field(default_factory=dict, sa_type=JSONType, nullable=False)
    status: str = Field(default=OutboxStatus.PENDING, max_length=16)
    not_before: datetime = _stamp()
    attempts: int = Field(default=0)
    result: dict[str, Any] | None = _json(nullable=True)
    error: str | None = Field(default=None, sa_type=sa.Text)
    claimed_by: str | None = Field(default=None, max_length=64)
    version: int = Field(default=0)
    created_at: datetime = _stamp()
    sent_at: datetime | None = _time()

    __table_args__ = (sa.Index("ix_outbox_status_not_before", "status", "not_before"),)


class SlackInbox(SQLModel, table=True):
    """A Slack command, click or modal submission, stored before Slack gets its ack.

    `id` is derived from the request (bot/slack/inbox.py), so a replay or a redelivery
    is one row: the HTTP guard's replay check (it replaced `seen_request`). A row stays
    `open` until its work is done; a replica claims it with a lease, and another takes
    it over when that replica dies (migration 0011).
    """

    __tablename__ = "slack_inbox"
    __table_args__ = (sa.Index("ix_slack_inbox_status_lease", "status", "lease_until"),)

    id: str = Field(primary_key=True, max_length=64)
    kind: str = Field(max_length=16)
    user_id: str | None = Field(default=None, max_length=64)
    channel: str | None = Field(default=None, max_length=200)
    payload: dict[str, Any] = Field(default_factory=dict, sa_type=JSONType, nullable=False)
    status: str = Field(default="open", max_length=16)
    claimed_by: str | None = Field(default=None, max_length=200)
    lease_until: datetime | None = _time()
    attempts: int = Field(default=0)
    received_at: datetime = _stamp()
    finished_at: datetime | None = _time(index=True)  # done rows are pruned by it


class GroupChange(SQLModel, table=True):
    """How many times Slack said a user group changed: a replica that cached the group's
    members at an older count asks Slack again (bot/slack/directory.py)."""

    __tablename__ = "group_change"

    group_id: str = Field(primary_key=True, max_length=64)
    version: int = Field(default=0)
    changed_at: datetime = _stamp()


class Replica(SQLModel, table=True):
    """Each process serving the database (`serve`, `serve --no-slack`, `resume`), refreshed
    at every sweep: `opsloop_replicas_alive` counts the rows seen recently."""

    __tablename__ = "replica"

    id: str = Field(primary_key=True, max_length=200)  # leases.replica_id(): host/pid/incarnation
    started_at: datetime = _stamp()
    seen_at: datetime = _stamp(index=True)


class ReportDay(SQLModel, table=True):
    """One closed UTC day's counts of one table (`part`: runs, steps, gates) as JSON, for
    reports (orchestrator/reports/rollup.py); triggers delete it when a row of that day
    changes (migration 0018)."""

    __tablename__ = "report_day"

    day: str = Field(primary_key=True, max_length=10)
    part: str = Field(primary_key=True, max_length=8)
    figures: str = Field(sa_type=sa.Text)
