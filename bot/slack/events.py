"""Slack events that change who may do what: a user group's members or settings changed.

Group membership is cached (bot/slack/directory.py); these events drop the group's entry
before the request is acked, so once Slack has its 200 a removed member is refused.
Slack sends them to apps with the `usergroups:read` scope that subscribe to them
(manifest.yml). One replica gets each event; the others keep their cache until it
expires (SlackDirectory.ttl_s).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any

from slack_bolt import Ack, App

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


def listen_for_group_changes(app: App, forget: Callable[[str], None]) -> None:
    """Register listeners that call `forget(group)` for each group Slack says changed."""

    def on_group_change(ack: Ack, event: Mapping[str, Any]) -> None:
        group = changed_group(event)
        if group is not None:
            forget(group)  # a dict operation: done before the ack, not after it
            log.info("user group %s changed (%s): its members will be asked again",
                     group, event.get("type"))  # fmt: skip
        ack()

    for name in GROUP_EVENTS:
        app.event(name)(on_group_change)
