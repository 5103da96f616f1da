"""Slack user groups as the orchestrator's `Directory`, cached briefly, and forgotten as
soon as Slack says a group changed (bot/slack/events.py), on every replica."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from orchestrator.protocol import Directory

log = logging.getLogger(__name__)


@dataclass
class _Cached:
    users: frozenset[str]
    fetched_at: float
    count: int  # the group's change count when it was fetched
    checked_at: float  # when the count was last seen unchanged


class SlackDirectory:
    """Members of a user group (S...) via usergroups.users.list, cached for `ttl_s` by the
    clock `now` (seconds). `forget(group)` drops an entry at once (this replica got Slack's
    event); `changes(group)`, a count in the database, is looked at at most every
    `check_s`, so a change another replica was told of is seen within seconds."""

    def __init__(
        self, client: WebClient, ttl_s: float = 60.0, now: Callable[[], float] = time.monotonic,
        changes: Callable[[str], int] | None = None, check_s: float = 2.0,
    ) -> None:  # fmt: skip
        self.client = client
        self.ttl_s, self.check_s = ttl_s, check_s
        self._now = now
        self._changes = changes or (lambda group: 0)
        self._cache: dict[str, _Cached] = {}
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
        if hit and now - hit.fetched_at < self.ttl_s:
            if now - hit.checked_at < self.check_s:
                return hit.users
            if self._changes(group) == hit.count:
                hit.checked_at = now
                return hit.users
        count = self._changes(group)  # before asking Slack: a change meanwhile shows later
        try:
            users = frozenset(self.client.usergroups_users_list(usergroup=group)["users"])
        except SlackApiError as exc:
            # Unknown group, no paid plan, or Slack away: nobody is let in through it now;
            # not cached, so the next click asks again.
            log.warning("usergroups.users.list %s failed: %s", group, exc.response.get("error"))
            return frozenset()
        with self._lock:
            if self._forgotten.get(group, 0) == generation:
                self._cache[group] = _Cached(users, now, count, now)
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
