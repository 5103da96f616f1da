"""Slack events that change who may do what: a user group's members or settings changed.

Group membership is cached (bot/slack/directory.py). These events drop the group's entry
here before the request is acked (a dict operation), so once Slack has its 200 a removed
member is refused by this replica; then, on the work pool, the change is counted in the
database (and audited as `group.changed`), which the other replicas look at every few
seconds. Slack sends them to apps with the `usergroups:read` scope that subscribe to
them (manifest.yml).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from concurrent.futures import Executor
from typing import Any

from slack_bolt import Ack, App
from sqlalchemy.engine import Engine

from orchestrator.clock import Clock
from orchestrator.group_changes import record_change

log = logging.getLogger(__name__)
GROUP_EVENTS = ("subteam_members_changed", "subteam_updated")


def changed_group(event: Mapping[str, Any]) -> str | None:
    """The user-group id (S...) a subteam event is about, or None if it names none."""
    if event.get("type") == "subteam_members_changed":
        group = event.get("subteam_id")
    else:
        subteam = event.get("subteam")
        group = subteam.get("id") if isinstance(subteam, Mapping) else None
    return group if isinstance(group, str) and group else None


def listen_for_group_changes(
    app: App, forget: Callable[[str], None], work: Executor, engine: Engine, clock: Clock
) -> None:
    """Register listeners that `forget(group)` each group Slack says changed, then count
    the change in the database for the other replicas."""

    def record(group: str, event: Mapping[str, Any]) -> None:
        added, removed = event.get("added_users"), event.get("removed_users")
        try:
            record_change(engine, group, clock.now(), event=str(event.get("type")),
                          added=_ids(added), removed=_ids(removed))  # fmt: skip
        except Exception:  # the pool would keep it silently; other replicas' caches expire
            log.exception("could not record that user group %s changed", group)

    def on_group_change(ack: Ack, event: Mapping[str, Any]) -> None:
        group = changed_group(event)
        if group is not None:
            forget(group)
        ack()
        if group is not None:
            log.info("user group %s changed (%s): its members will be asked again",
                     group, event.get("type"))  # fmt: skip
            work.submit(record, group, event)

    for name in GROUP_EVENTS:
        app.event(name)(on_group_change)


def _ids(value: Any) -> list[str]:
    return [str(v) for v in value] if isinstance(value, list) else []
