"""Interactions (a request for a person) as the orchestrator reads them, and their views.

Rows stay rows (the engine updates them in transactions); `interaction_view` turns
one into the typed `InteractionView` that front ends are handed.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from orchestrator.protocol import InteractionView
from storage.models import Interaction
from storage.statuses import InteractionStatus

INTERACTIONS: sa.Table = Interaction.__table__  # type: ignore[attr-defined]


def interaction_id(thread_id: str, n: int) -> str:
    """Deterministic: a step that re-runs (resume, crash) finds its n-th interaction again."""
    digest = hashlib.sha256(f"{thread_id}#{n}".encode()).hexdigest()
    return "i-" + digest[:12]


def load_interaction(conn: Connection, iid: str) -> Mapping[str, Any] | None:
    return conn.execute(sa.select(INTERACTIONS).where(INTERACTIONS.c.id == iid)).mappings().first()


def interaction_view(row: Mapping[str, Any]) -> InteractionView:
    return InteractionView(
        id=row["id"], run_id=row["run_id"], step_id=row["step_id"], kind=row["kind"],
        purpose=row["purpose"], prompt=row["prompt"], status=row["status"],
        options=tuple(row["options"] or ()), fields=tuple(row["fields"] or ()),
        allowed_users=tuple(row["allowed_users"] or ()),
        allowed_groups=tuple(row["allowed_groups"] or ()), required=row["required_approvals"],
        responses=tuple(row["responses"] or ()), answer=row["answer"],
        answered_by=row["answered_by"], deadline=row["deadline"],
        answered_at=row["answered_at"], allow_requester=row["allow_requester"],
        on_deadline=row["on_deadline"], notify=row["notify"], escalate_to=row["escalate_to"],
        editable_params=tuple(row["editable_params"] or ()),
    )  # fmt: skip


def pending_interactions(conn: Connection, run_id: str | None = None) -> list[Mapping[str, Any]]:
    stmt = sa.select(INTERACTIONS).where(INTERACTIONS.c.status == InteractionStatus.PENDING)
    if run_id is not None:
        stmt = stmt.where(INTERACTIONS.c.run_id == run_id)
    return list(conn.execute(stmt.order_by(INTERACTIONS.c.created_at)).mappings())


def step_interaction(conn: Connection, run_id: str, step_id: str) -> Mapping[str, Any] | None:
    """The newest interaction of a step."""
    return (
        conn.execute(
            sa.select(INTERACTIONS)
            .where(INTERACTIONS.c.run_id == run_id, INTERACTIONS.c.step_id == step_id)
            .order_by(INTERACTIONS.c.created_at.desc())
            .limit(1)
        )
        .mappings()
        .first()
    )
