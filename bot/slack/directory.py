"""Slack user groups as the orchestrator's `Directory`, cached briefly, and forgotten as
soon as Slack says a group changed (bot/slack/events.py)."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from orchestrator.protocol import Directory

log = logging.getLogger(__name__)


class SlackDirectory:
    """Members of a user group (S...) via usergroups.users.list; cached for `ttl_s` by the
    clock `now` (seconds), or until `forget(group)`."""

    def __init__(
        self, client: WebClient, ttl_s: float = 60.0, now: Callable[[], float] = time.monotonic
    ) -> None:
        self.client = client
        self.ttl_s = ttl_s
        self._now = now
        self._cache: dict[str, tuple[float, frozenset[str]]] = {}
        # group -> times forgotten: a look-up that began before a forget must not cache
        # the list it fetched, which may be the old one.
        self._forgotten: dict[str, int] = {}
        self._lock = threading.Lock()

    def forget(self, group: str) -> None:
        """Drop what is cached of `group`: its next look-up asks Slack."""
        with self._lock:
            self._cache.pop(group, None)
            self._forgotten[group] = self._forgotten.get(group, 0) + 1

    def members(self, group: str) -> frozenset[str]:
        now = self._now()
        with self._lock:
            hit = self._cache.get(group)
            generation = self._forgotten.get(group, 0)
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
            if self._forgotten.get(group, 0) == generation:
                self._cache[group] = (now, users)
        return users


class CombinedDirectory:
    """Groups given in OPSLOOP_GROUPS first (free workspaces), then Slack user groups."""

    def __init__(self, *directories: Directory) -> None:
        self.directories = directories

    def forget(self, group: str) -> None:
        """Drop what any of the directories caches of `group`."""
        for directory in self.directories:
            if isinstance(directory, SlackDirectory):
                directory.forget(group)

    def members(self, group: str) -> frozenset[str]:
        for directory in self.directories:
            if found := directory.members(group):
                return found
        return frozenset()
