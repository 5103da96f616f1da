"""Reminders and escalations reach Slack whichever process fired them.

A reminder or an escalation is fired by whichever process wins its claim
(orchestrator/people.py): a `serve` replica, `serve --no-slack`, or an `opsloop run`
waiting in a terminal. Each is audited in the transaction that claims it
(`interaction.reminded`, `interaction.escalated`), so the reconciler, which reads the
audit log (orchestrator/changes.py), posts them: under a key made from the entry (a
reminder) or the question (an escalation), so each is posted once whichever Slack
replica reads it first, and not again after a restart. Of the reminders of one
question read together (those fired while no Slack replica ran), only the latest is
posted; none for a question answered meanwhile.
"""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy.engine import Engine

from bot.slack.frontend import SlackFrontEnd
from orchestrator.changes import Change
from orchestrator.errors import NotFound
from orchestrator.queries import interaction, run_view
from storage.statuses import InteractionStatus

REMINDED, ESCALATED = "interaction.reminded", "interaction.escalated"


def is_nudge(change: Change) -> bool:
    """Whether the audit entry is a reminder or an escalation that Slack should show."""
    return change.action in (REMINDED, ESCALATED) and bool(change.interaction_id)


def post_nudges(engine: Engine, front: SlackFrontEnd, changes: Iterable[Change]) -> int:
    """Queue the reminders and escalations among `changes`; how many were asked for."""
    latest: dict[tuple[str, str], Change] = {}
    for change in changes:
        if is_nudge(change) and change.run_id:
            key = (change.action, change.interaction_id or "")
            if key not in latest or latest[key].id < change.id:
                latest[key] = change
    asked = 0
    for (action, iid), change in sorted(latest.items(), key=lambda item: item[1].id):
        question = interaction(engine, iid)
        if question is None or question.status != InteractionStatus.PENDING:
            continue
        try:
            run = run_view(engine, question.run_id)
        except NotFound:
            continue
        if action == REMINDED:
            front.reminded(run, question, change.id)
        else:
            front.escalated(run, question)
        asked += 1
    return asked
