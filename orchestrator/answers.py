"""Recording a person's answer: permission, validation, one conditional UPDATE, audit."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from orchestrator import gates, interactions, runs
from orchestrator.errors import AlreadyAnswered, InvalidAnswer, NotAllowed, NotFound
from orchestrator.services import Services
from orchestrator.storage_retry import storage_attempts
from orchestrator.workflow.params import coerce_value
from storage.claims import claim
from storage.engine import write_transaction
from storage.models import Interaction
from storage.statuses import InteractionStatus

MAX_TRIES = 50  # quorum answers that lose a race re-read and try again


def record_answer(
    services: Services,
    iid: str,
    user: str,
    answer: Any,
    comment: str | None,
    params: Mapping[str, Any] | None = None,
) -> Mapping[str, Any]:
    """Apply one answer; return the interaction row as it is afterwards."""
    for _ in range(MAX_TRIES):
        now = services.clock.now()
        refused: NotAllowed | None = None
        for attempt in storage_attempts():
            with attempt, write_transaction(services.engine) as conn:
                row = interactions.load_interaction(conn, iid)
                if row is None:
                    raise NotFound(f"no interaction {iid!r}; `opsloop pending` lists the open ones")
                if row["status"] != InteractionStatus.PENDING:
                    raise AlreadyAnswered(iid, row["status"], row["answered_by"])
                requester = conn.execute(
                    sa.select(runs.RUNS.c.started_by).where(runs.RUNS.c.id == row["run_id"])
                ).scalar()
                try:
                    gates.check_allowed(row, user, requester, services.directory)
                except NotAllowed as exc:
                    refused = exc
                    runs.audit(conn, user, "interaction.refused", now=now, run_id=row["run_id"],
                               interaction_id=iid, reason=str(exc))  # fmt: skip
                if refused is None:
                    changes = _param_changes(services, conn, row, answer, params) if params else {}
                    outcome = gates.apply_answer(row, user, answer, comment, now)
                    if changes:  # the gate message shows the diff with the answer
                        outcome.responses[-1]["changes"] = _diff(conn, row["run_id"], changes)
                    values: dict[str, Any] = {
                        "status": outcome.status, "responses": outcome.responses,
                    }  # fmt: skip
                    if outcome.closed:
                        values.update(answer=outcome.answer, answered_by=user, answered_at=now)
                    if claim(conn, Interaction, iid, expect=[InteractionStatus.PENDING],
                             version=row["version"], values=values):  # fmt: skip
                        runs.audit(conn, user, "interaction.answered", now=now,
                                   run_id=row["run_id"], interaction_id=iid, answer=answer,
                                   comment=comment, status=str(outcome.status))  # fmt: skip
                        if changes:
                            _change_params(conn, row["run_id"], user, iid, changes, now)
                        updated = interactions.load_interaction(conn, iid)
                        assert updated is not None
                        return updated
        if refused is not None:
            raise refused
    raise AlreadyAnswered(iid, "busy", None)


def _param_changes(
    services: Services, conn: Connection, row: Mapping[str, Any], answer: Any,
    params: Mapping[str, Any],
) -> dict[str, Any]:  # fmt: skip
    """The typed values of `params`, checked against the gate; InvalidAnswer otherwise."""
    if row["kind"] != "approval" or str(answer).strip().lower() not in gates.APPROVE_WORDS:
        raise InvalidAnswer("params can only be changed while approving")
    editable = set(row["editable_params"] or ())
    refused = sorted(set(params) - editable)
    if refused:
        allowed = ", ".join(sorted(editable)) or "none"
        raise InvalidAnswer(f"this gate does not let you change {', '.join(refused)}; "
                            f"editable here: {allowed}")  # fmt: skip
    workflow_name, digest = conn.execute(
        sa.select(runs.RUNS.c.workflow, runs.RUNS.c.definition_hash).where(
            runs.RUNS.c.id == row["run_id"]
        )
    ).one()
    declared = {p.name: p for p in services.versions.of(workflow_name, digest).params}
    unknown = sorted(set(params) - set(declared))
    if unknown:  # only a question asked by a task (ctx.ask) can name such a param
        raise InvalidAnswer(f"the run has no param {', '.join(unknown)}; "
                            f"its params: {', '.join(sorted(declared)) or 'none'}")  # fmt: skip
    return {name: coerce_value(declared[name], value) for name, value in params.items()}


def _diff(conn: Connection, run_id: str, changes: Mapping[str, Any]) -> dict[str, list[Any]]:
    """{param: [before, after]} for each param `changes` gives a new value."""
    before = conn.execute(sa.select(runs.RUNS.c.params).where(runs.RUNS.c.id == run_id)).scalar()
    return {k: [(before or {}).get(k), v] for k, v in changes.items()
            if (before or {}).get(k) != v}  # fmt: skip


def _change_params(
    conn: Connection, run_id: str, user: str, iid: str, changes: Mapping[str, Any], now: Any
) -> None:
    before = conn.execute(sa.select(runs.RUNS.c.params).where(runs.RUNS.c.id == run_id)).scalar()
    after = {**(before or {}), **changes}
    if after == before:
        return
    conn.execute(sa.update(runs.RUNS).where(runs.RUNS.c.id == run_id).values(params=after))
    runs.audit(conn, user, "run.params_changed", now=now, run_id=run_id, interaction_id=iid,
               before={k: (before or {}).get(k) for k in changes}, after=dict(changes))  # fmt: skip
