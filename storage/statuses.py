"""The statuses a run, a step, an interaction and an outbox message move through.

The one place they are spelled. Dependency-free (no SQLAlchemy), so the workflow
language (`orchestrator.workflow`), which must stay pure, can read them too.
"""

from __future__ import annotations

from enum import StrEnum

SYSTEM = "opsloop"  # the actor in the audit log (and answered_by) for what opsloop does itself


class RunStatus(StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    WAITING = "waiting"  # nothing can move until a person answers
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"


class StepStatus(StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    WAITING = "waiting"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    SKIPPED = "skipped"
    CANCELLED = "cancelled"


class InteractionKind(StrEnum):
    APPROVAL = "approval"
    DECISION = "decision"
    INPUT = "input"


class InteractionStatus(StrEnum):
    PENDING = "pending"
    APPROVED = "approved"
    REJECTED = "rejected"
    DECIDED = "decided"
    SUBMITTED = "submitted"
    EXPIRED = "expired"
    CANCELLED = "cancelled"


class OutboxStatus(StrEnum):
    PENDING = "pending"
    SENDING = "sending"
    SENT = "sent"
    FAILED = "failed"  # gave up after many attempts; kept for the operator to see


# Finished: nothing of it runs or waits any more (until someone retries it).
FINISHED_RUN: frozenset[RunStatus] = frozenset(
    {RunStatus.SUCCEEDED, RunStatus.FAILED, RunStatus.CANCELLED}
)
FINISHED_STEP: frozenset[StepStatus] = frozenset(
    {StepStatus.SUCCEEDED, StepStatus.FAILED, StepStatus.SKIPPED, StepStatus.CANCELLED}
)
