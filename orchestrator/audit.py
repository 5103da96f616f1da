"""The audit log as people read it (`opsloop audit`, `/ops audit`, the trail in `show`).

Entries come newest last, filtered by run, time and actor; `visible` keeps what one
person may see under the access policy's visibility rule (orchestrator/access.py):
a run's entries to whoever may see the run, entries of no run (schedule changes, refused
starts) to their actor and to admins. A refused read is audited like any refusal.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from orchestrator import runs
from orchestrator.access import AccessPolicy
from orchestrator.errors import NotAllowed
from orchestrator.gates import person_key
from orchestrator.interactions import INTERACTIONS
from orchestrator.storage_retry import storage_attempts
from orchestrator.workflow.definitions import Workflow
from orchestrator.workflow.gate_definitions import Approvers
from storage.engine import read_transaction, write_transaction
from storage.statuses import InteractionStatus

MAX_ENTRIES = 10_000  # the newest this many; a longer trail is cut from the old end
RUN_ID_CHARS = 64  # audit_log.run_id's width


@dataclass(frozen=True)
class AuditRecord:
    """One thing someone (or the system) did, as the audit log keeps it."""

    at: datetime
    actor: str
    action: str
    run_id: str | None
    step_id: str | None  # the step of its interaction, or the one its detail names
    interaction_id: str | None
    detail: dict[str, Any]


def audit_entries(
    engine: Engine, *, run_id: str | None = None, since: datetime | None = None,
    actor: str | None = None, limit: int = MAX_ENTRIES,
) -> list[AuditRecord]:  # fmt: skip
    """Entries matching every filter given, at most `limit` (the newest), newest last.
    `actor` is compared as gates compare ids (trimmed, case-folded)."""
    log = runs.AUDIT
    query = (
        sa.select(log.c.at, log.c.actor, log.c.action, log.c.run_id, INTERACTIONS.c.step_id,
                  log.c.interaction_id, log.c.detail)
        .select_from(log.outerjoin(INTERACTIONS, INTERACTIONS.c.id == log.c.interaction_id))
        .order_by(log.c.at.desc(), log.c.id.desc())
        .limit(limit)
    )  # fmt: skip
    if run_id is not None:
        query = query.where(log.c.run_id == run_id)
    if since is not None:
        query = query.where(log.c.at >= since)
    if actor is not None:
        query = query.where(sa.func.lower(sa.func.trim(log.c.actor)) == person_key(actor))
    with read_transaction(engine) as conn:
        rows = conn.execute(query).all()
    return [
        AuditRecord(at, who, action, run, step or (detail or {}).get("step"), iid, detail or {})
        for at, who, action, run, step, iid, detail in reversed(rows)
    ]


class RunVisibility:
    """Who may see which runs, for a batch of entries: each run's requester, channel and
    the people its gates asked are read once."""

    def __init__(self, engine: Engine, policy: AccessPolicy) -> None:
        self._engine, self._policy = engine, policy

    def visible(
        self, user: str, entries: Sequence[AuditRecord], where: str | None = None
    ) -> list[AuditRecord]:
        """The entries `user` (asking from Slack channel `where`) may see."""
        seeing = self.runs_seen(user, {e.run_id for e in entries if e.run_id}, where)
        admin, me = self._policy.is_admin(user), person_key(user)
        return [
            e for e in entries
            if (e.run_id in seeing if e.run_id else admin or person_key(e.actor) == me)
        ]  # fmt: skip

    def may_see(self, user: str, run_id: str, where: str | None = None) -> bool:
        return run_id in self.runs_seen(user, {run_id}, where)

    def runs_seen(self, user: str, run_ids: set[str], where: str | None) -> set[str]:
        """Which of `run_ids` `user` may see: in its channel, its requester, an admin, or
        someone its gates ask (an open gate still waiting asks everyone)."""
        if not run_ids:
            return set()
        rows, asked = self._load(run_ids)
        may_see = self._policy.may_see
        return {
            run_id for run_id, (requester, channel) in rows.items()
            if may_see(user, requester, channel, where, asked.get(run_id, []))
        }  # fmt: skip

    def _load(
        self, run_ids: set[str]
    ) -> tuple[dict[str, tuple[str, str | None]], dict[str, list[Approvers]]]:
        table, ids = runs.RUNS, sorted(run_ids)
        with read_transaction(self._engine) as conn:
            found = conn.execute(sa.select(table.c.id, table.c.started_by, table.c.channel)
                                 .where(table.c.id.in_(ids))).all()  # fmt: skip
            gates = conn.execute(
                sa.select(INTERACTIONS.c.run_id, INTERACTIONS.c.status,
                          INTERACTIONS.c.allowed_users, INTERACTIONS.c.allowed_groups)
                .where(INTERACTIONS.c.run_id.in_(ids))
            ).all()  # fmt: skip
        asked: dict[str, list[Approvers]] = {}
        for run_id, status, users, groups in gates:
            who = Approvers(tuple(users or ()), tuple(groups or ()))
            # A gate that asked everyone makes the run public only while it waits.
            if not who.is_open or status == InteractionStatus.PENDING:
                asked.setdefault(run_id, []).append(who)
        return {r: (by, channel) for r, by, channel in found}, asked


def audit_refusal(engine: Engine, now: datetime, by: str, what: str, reason: str,
                  run_id: str | None = None, **detail: Any) -> None:  # fmt: skip
    """Write the one `access.refused` entry a refusal leaves."""
    for attempt in storage_attempts():
        with attempt, write_transaction(engine) as conn:
            runs.audit(conn, by, "access.refused", now=now, run_id=run_id, attempted=what,
                       reason=reason, **detail)  # fmt: skip


def check_start(
    engine: Engine, policy: AccessPolicy, now: datetime, user: str, workflow: Workflow,
    channel: str | None,
) -> None:  # fmt: skip
    """NotAllowed (audited, as a refused start is) unless `user` may start `workflow` from
    Slack `channel`: asked before a form for the run's params is shown, not after."""
    refusal = policy.run_refusal(user, workflow, channel)
    if refusal is not None:
        audit_refusal(engine, now, user, "run", refusal, workflow=workflow.name, channel=channel)
        raise NotAllowed(refusal)


def check_visible(
    engine: Engine, policy: AccessPolicy, now: datetime, user: str, run_id: str,
    where: str | None, what: str,
) -> None:  # fmt: skip
    """NotAllowed (audited) unless `user`, asking from Slack channel `where`, may see the
    run: the same words whether it exists or not, so a refusal leaks nothing."""
    if not RunVisibility(engine, policy).may_see(user, run_id, where):
        reason = (
            f"there is no run {run_id} that you may see: a run shows in its channel, to "
            "its requester, to the people its gates ask, and to admins"
        )
        # The id is what someone typed: kept whole (to a point) in the detail, and in the
        # run_id column only if it can be one.
        column = run_id if len(run_id) <= RUN_ID_CHARS else None
        audit_refusal(engine, now, user, what, reason, run_id=column, run=run_id[:200])
        raise NotAllowed(reason)


def run_trail(
    engine: Engine, policy: AccessPolicy, now: datetime, user: str, run_id: str,
    where: str | None,
) -> list[AuditRecord]:  # fmt: skip
    """A run's entries, for someone who may see the run (else NotAllowed, audited)."""
    check_visible(engine, policy, now, user, run_id, where, "audit")
    return audit_entries(engine, run_id=run_id)
