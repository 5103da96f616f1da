"""Recording a person's answer: permission, validation, one conditional UPDATE, audit."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from orchestrator import gates, runs
from orchestrator.errors import AlreadyAnswered, NotAllowed, NotFound
from storage.claims import claim
from storage.engine import write_transaction
from storage.models import Interaction, InteractionStatus

if TYPE_CHECKING:
    from orchestrator.engine import Orchestrator

MAX_TRIES = 50  # quorum answers that lose a race re-read and try again


def record_answer(
    orch: Orchestrator, iid: str, user: str, answer: Any, comment: str | None
) -> Mapping[str, Any]:
    """Apply one answer; return the interaction row as it is afterwards."""
    for _ in range(MAX_TRIES):
        now = orch.clock()
        refused: NotAllowed | None = None
        with write_transaction(orch.engine) as conn:
            row = runs.load_interaction(conn, iid)
            if row is None:
                raise NotFound(f"no interaction {iid!r}; `opsloop pending` lists the open ones")
            if row["status"] != InteractionStatus.PENDING:
                raise AlreadyAnswered(iid, row["status"], row["answered_by"])
            requester = conn.execute(
                sa.select(runs.RUNS.c.started_by).where(runs.RUNS.c.id == row["run_id"])
            ).scalar()
            try:
                gates.check_allowed(row, user, requester, orch.directory)
            except NotAllowed as exc:
                refused = exc
                runs.audit(conn, user, "interaction.refused", now=now, run_id=row["run_id"],
                           interaction_id=iid, reason=str(exc))  # fmt: skip
            if refused is None:
                outcome = gates.apply_answer(row, user, answer, comment, now)
                values: dict[str, Any] = {"status": outcome.status, "responses": outcome.responses}
                if outcome.closed:
                    values.update(answer=outcome.answer, answered_by=user, answered_at=now)
                if claim(conn, Interaction, iid, expect=[InteractionStatus.PENDING],
                         version=row["version"], values=values):  # fmt: skip
                    runs.audit(conn, user, "interaction.answered", now=now,
                               run_id=row["run_id"], interaction_id=iid, answer=answer,
                               comment=comment, status=str(outcome.status))  # fmt: skip
                    updated = runs.load_interaction(conn, iid)
                    assert updated is not None
                    return updated
        if refused is not None:
            raise refused
    raise AlreadyAnswered(iid, "busy", None)
