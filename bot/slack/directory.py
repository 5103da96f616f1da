"""Slack user groups as the orchestrator's `Directory`, cached briefly."""

from __future__ import annotations

import logging
import threading
import time

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from orchestrator.protocol import Directory

log = logging.getLogger(__name__)


class SlackDirectory:
    """Members of a user group (S...) via usergroups.users.list; cached for `ttl_s`."""

    def __init__(self, client: WebClient, ttl_s: float = 60.0) -> None:
        self.client = client
        self.ttl_s = ttl_s
        self._cache: dict[str, tuple[float, frozenset[str]]] = {}
        self._lock = threading.Lock()

    def members(self, group: str) -> frozenset[str]:
        now = time.monotonic()
        with self._lock:
            hit = self._cache.get(group)
        if hit and now - hit[0] < self.ttl_s:
            return hit[1]
        try:
            users = frozenset(self.client.usergroups_users_list(usergroup=group)["users"])
        except SlackApiError as exc:
            # Unknown group, no paid plan, or Slack away: nobody is let in through it now;
            # not cached, so the next click asks again.
            log.warning("usergroups.users.list %s failed: %s", group, exc.response.get("error"))
            return frozenset()
        with self._lock:
            self._cache[group] = (now, users)
        return users


class CombinedDirectory:
    """Groups given in OPSLOOP_GROUPS first (free workspaces), then Slack user groups."""

    def __init__(self, *directories: Directory) -> None:
        self.directories = directories

    def members(self, group: str) -> frozenset[str]:
        for directory in self.directories:
            if found := directory.members(group):
                return found
        return frozenset()
