"""Interactions (a request for a person) as the orchestrator reads them, and their views.

Rows stay rows (the engine updates them in transactions); `interaction_view` turns
one into the typed `InteractionView` that front ends are handed.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from orchestrator.protocol import InteractionView, Response
from orchestrator.workflow.gate_definitions import InputField, Option
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
    """The typed view of an interaction row: its JSON columns are read here, once."""
    return InteractionView(
        id=row["id"], run_id=row["run_id"], step_id=row["step_id"], kind=row["kind"],
        purpose=row["purpose"], prompt=row["prompt"], status=row["status"],
        options=tuple(map(option, row["options"] or ())),
        fields=tuple(map(input_field, row["fields"] or ())),
        allowed_users=tuple(row["allowed_users"] or ()),
        allowed_groups=tuple(row["allowed_groups"] or ()), required=row["required_approvals"],
        responses=tuple(map(response, row["responses"] or ())), answer=row["answer"],
        answered_by=row["answered_by"], deadline=row["deadline"],
        answered_at=row["answered_at"], asked_at=row.get("created_at"),
        allow_requester=row["allow_requester"],
        on_deadline=row["on_deadline"], notify=row["notify"], escalate_to=row["escalate_to"],
        editable_params=tuple(row["editable_params"] or ()),
    )  # fmt: skip


def option(raw: Mapping[str, Any]) -> Option:
    """An `options` entry ({"value", "label"}, as `gates` writes it)."""
    value = str(raw["value"])
    return Option(value, str(raw.get("label") or value))


def input_field(raw: Mapping[str, Any]) -> InputField:
    """A `fields` entry ({"name", "type", "required", "choices", "label"}, as `gates` writes it)."""
    name = str(raw["name"])
    return InputField(
        name=name, type=raw.get("type") or "text", required=bool(raw.get("required")),
        choices=tuple(str(c) for c in raw.get("choices") or ()),
        label=str(raw.get("label") or name),
    )  # fmt: skip


def response(raw: Mapping[str, Any]) -> Response:
    """A `responses` entry ({"user", "at" (ISO 8601), "answer", "comment"?, "changes"?:
    {param: [before, after]}})."""
    changes = raw.get("changes")
    return Response(
        user=str(raw.get("user") or ""), answer=raw.get("answer"),
        at=_moment(raw.get("at")), comment=raw.get("comment"),
        changes={k: tuple(v) for k, v in changes.items()} if isinstance(changes, dict) else None,
    )  # fmt: skip


def _moment(text: Any) -> datetime | None:
    try:
        moment = datetime.fromisoformat(text) if isinstance(text, str) else None
    except ValueError:
        return None
    return moment if moment is None or moment.tzinfo else moment.replace(tzinfo=UTC)


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
