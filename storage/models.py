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
from sqlalchemy.dialects.postgresql import JSONB
from sqlmodel import Field, SQLModel

from storage.statuses import InteractionStatus, OutboxStatus, RunStatus, StepStatus
from storage.types import UtcDateTime, utcnow

JSONType = sa.JSON().with_variant(JSONB(), "postgresql")


def _json(nullable: bool = False) -> Any:
    return Field(default=None, sa_type=JSONType, nullable=nullable)


def _time(index: bool = False) -> Any:
    """A nullable timestamp column, aware UTC in and out."""
    return Field(default=None, sa_type=UtcDateTime, nullable=True, index=index)


def _stamp(index: bool = False) -> Any:
    """A required timestamp column that defaults to the moment the row is built."""
    return Field(default_factory=utcnow, sa_type=UtcDateTime, nullable=False, index=index)


class WorkflowRun(SQLModel, table=True):
    __tablename__ = "workflow_run"
    # Reports read runs by when they were created (migration 0009).
    __table_args__ = (sa.Index("ix_workflow_run_created_at", "created_at", "workflow"),)

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


class WorkflowDefinition(SQLModel, table=True):
    """A workflow's source text by its sha256: what a run started with (workflow_run's
    definition_hash), so editing the file never changes a run already under way."""

    __tablename__ = "workflow_definition"

    digest: str = Field(primary_key=True, max_length=64)
    workflow: str = Field(max_length=200)
    text: str = Field(sa_type=sa.Text)
    created_at: datetime = _stamp()


class StepRun(SQLModel, table=True):
    __tablename__ = "step_run"
    __table_args__ = (sa.UniqueConstraint("run_id", "step_id", name="uq_step_run_run_step"),)

    id: int | None = Field(default=None, primary_key=True)
    run_id: str = Field(foreign_key="workflow_run.id", index=True, max_length=64)
    step_id: str = Field(max_length=200)
    status: str = Field(default=StepStatus.PENDING, index=True, max_length=16)
    attempts: int = Field(default=0)
    outputs: dict[str, Any] | None = _json(nullable=True)
    error: str | None = Field(default=None, sa_type=sa.Text)
    # The LangGraph thread that holds this step's checkpoints.
    thread_id: str | None = Field(default=None, max_length=200)
    # Which replica runs the step, and until when its claim holds.
    owner: str | None = Field(default=None, max_length=200)
    lease_until: datetime | None = _time()
    version: int = Field(default=0)
    started_at: datetime | None = _time()
    finished_at: datetime | None = _time()
    updated_at: datetime = _stamp()


class Interaction(SQLModel, table=True):
    """A request for a person: approve/reject, pick an option, or give input."""

    __tablename__ = "interaction"
    __table_args__ = (sa.Index("ix_interaction_created_at", "created_at"),)

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


class CheckpointRow(SQLModel, table=True):
    """One LangGraph checkpoint, without the channel values kept in `checkpoint_blob`.

    Text columns are unbounded: LangGraph makes channel names such as
    "join:a+b+...:node" that grow with the graph.
    """

    __tablename__ = "checkpoint"
    # SQLite keeps the rows in the primary-key b-tree, not beside a copy of the key.
    __table_args__ = {"sqlite_with_rowid": False}

    thread_id: str = Field(primary_key=True, sa_type=sa.Text)
    checkpoint_ns: str = Field(default="", primary_key=True, sa_type=sa.Text)
    checkpoint_id: str = Field(primary_key=True, sa_type=sa.Text)
    parent_checkpoint_id: str | None = Field(default=None, sa_type=sa.Text)
    # The run that wrote it (from metadata), so delete_for_runs is one indexed DELETE.
    run_id: str | None = Field(default=None, index=True, sa_type=sa.Text)
    type: str = Field(sa_type=sa.Text)
    checkpoint: bytes = Field(sa_type=sa.LargeBinary)
    metadata_: dict[str, Any] = Field(
        default_factory=dict, sa_column=sa.Column("metadata", JSONType, nullable=False)
    )


class CheckpointBlobRow(SQLModel, table=True):
    """A channel's value at one version; written once, shared by every checkpoint that has it."""

    __tablename__ = "checkpoint_blob"
    # SQLite keeps the rows in the primary-key b-tree, not beside a copy of the key.
    __table_args__ = {"sqlite_with_rowid": False}

    thread_id: str = Field(primary_key=True, sa_type=sa.Text)
    checkpoint_ns: str = Field(default="", primary_key=True, sa_type=sa.Text)
    channel: str = Field(primary_key=True, sa_type=sa.Text)
    version: str = Field(primary_key=True, sa_type=sa.Text)
    type: str = Field(sa_type=sa.Text)
    blob: bytes | None = Field(default=None, sa_type=sa.LargeBinary)


class CheckpointWriteRow(SQLModel, table=True):
    """A pending write of one task against one checkpoint."""

    __tablename__ = "checkpoint_write"
    # SQLite keeps the rows in the primary-key b-tree, not beside a copy of the key.
    __table_args__ = {"sqlite_with_rowid": False}

    thread_id: str = Field(primary_key=True, sa_type=sa.Text)
    checkpoint_ns: str = Field(default="", primary_key=True, sa_type=sa.Text)
    checkpoint_id: str = Field(primary_key=True, sa_type=sa.Text)
    task_id: str = Field(primary_key=True, sa_type=sa.Text)
    idx: int = Field(
        primary_key=True, sa_type=sa.Integer, sa_column_kwargs={"autoincrement": False}
    )
    task_path: str = Field(default="", sa_type=sa.Text)
    channel: str = Field(sa_type=sa.Text)
    type: str = Field(sa_type=sa.Text)
    blob: bytes = Field(sa_type=sa.LargeBinary)


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


class SeenRequest(SQLModel, table=True):
    """The signature of each Slack request accepted within Slack's five-minute window, so
    a request replayed (to this replica or another) is recognised and refused."""

    __tablename__ = "seen_request"

    signature: str = Field(primary_key=True, max_length=100)
    seen_at: datetime = _stamp(index=True)
