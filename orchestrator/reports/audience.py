"""Whose runs a report may count: access.py's "see a run" rule as one SQL condition.

A person sees a run in the channel they ask from, a run they requested, a run whose
open gate asks them (or anyone), and, as an admin, every run. A report posted into a
channel is seen by everyone there, so it counts the runs of that channel only (runs
with no channel are posted to the default channel, so a report with no channel counts
those). `None` instead of an Audience means everything (`opsloop report`, admins).
"""

from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from orchestrator.access import AccessPolicy
from orchestrator.gates import person_key
from orchestrator.queries import open_interactions
from orchestrator.reports.tables import RUNS
from orchestrator.workflow.definitions import Approvers


@dataclass(frozen=True)
class Audience:
    """Runs in one of `channels` (None: runs with no channel), requested by one of
    `people` (person keys), or one of `run_ids`."""

    channels: tuple[str | None, ...] = ()
    people: tuple[str, ...] = ()
    run_ids: tuple[str, ...] = ()

    def clause(self) -> sa.ColumnElement[bool]:
        named = [c for c in self.channels if c is not None]
        parts = [RUNS.c.channel.in_(named)] if named else []
        if None in self.channels:
            parts.append(RUNS.c.channel.is_(None))
        if self.people:  # person_key is strip + casefold; Slack ids are ASCII
            parts.append(sa.func.lower(sa.func.trim(RUNS.c.started_by)).in_(self.people))
        if self.run_ids:
            parts.append(RUNS.c.id.in_(self.run_ids))
        return sa.or_(*parts) if parts else sa.false()


def channel_audience(channel: str | None, *more: str) -> Audience:
    """Everyone in `channel`: the runs of that channel (None: the runs with no channel),
    and of the channels in `more` that a workflow's author chose to show there."""
    return Audience(channels=(channel, *more))


def person_audience(
    policy: AccessPolicy, engine: Engine, user: str, where: str | None
) -> Audience | None:
    """What `user`, asking from channel `where` (None: not from a channel), may see;
    None for an admin, who sees everything."""
    if policy.is_admin(user):
        return None
    asked = {
        i.run_id for i in open_interactions(engine)
        if (who := Approvers(tuple(i.allowed_users), tuple(i.allowed_groups))).is_open
        or policy.names(user, who)
    }  # fmt: skip
    return Audience(channels=(where,) if where is not None else (),
                    people=(person_key(user),), run_ids=tuple(sorted(asked)))  # fmt: skip
