"""The Slack Web API methods the bot calls, and the OAuth scopes that makes it need.

`manifest.yml` asks for exactly `REQUIRED_SCOPES` (tests/test_manifest.py checks
it, and that no code in bot/ calls a method missing here). Calling a new
method means adding it here and its scope to the manifest.

Deliberately not used, so their scopes are not asked for:
- users.info (users:read): mentions (`<@U123>`) show people's names without it,
  and admins and approvers are configured by user id.
- conversations.open is used only to find a DM post whose answer was lost (its
  history needs the DM's id); posting a DM needs just the user id.
- chat:write.public: the bot posts only where it was invited (OPSLOOP_CHANNEL);
  replies to a slash command go through its response_url, which needs no scope.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

SLASH_COMMAND = "/ops"
EVENTS_PATH = "/slack/events"

# Web API method -> bot scope it needs (None: no scope).
METHOD_SCOPES: Mapping[str, str | None] = MappingProxyType(
    {
        "auth.test": None,  # App(token=...) checks the token at start
        "chat.postMessage": "chat:write",  # run boards, gate messages, thread replies, DMs
        "chat.update": "chat:write",  # boards and gates edited in place
        "chat.postEphemeral": "chat:write",  # refusals: "not yours to answer", "already answered"
        "views.open": None,  # input, reject-reason, params and edit-params modals
        "views.update": None,
        "views.publish": None,  # the App Home tab
        "usergroups.users.list": "usergroups:read",  # who is in an approver group
        # a post whose answer was lost is looked up by its metadata before it is re-sent
        "conversations.history": "channels:history",
        "conversations.replies": "channels:history",
        "conversations.open": "im:write",
        "files.getUploadURLExternal": "files:write",  # a report's chart, in three calls
        "files.completeUploadExternal": "files:write",
    }
)
# Features that need a scope without a Web API call.
FEATURE_SCOPES: Mapping[str, str] = MappingProxyType(
    {
        f"slash command {SLASH_COMMAND}": "commands",
        "looking up a lost post in a private channel": "groups:history",
        "looking up a lost post in a DM": "im:history",
    }
)
# Events the app subscribes to; app_home_opened needs no scope, the subteam events (a
# user group changed: its cached members are dropped) come with usergroups:read.
BOT_EVENTS: tuple[str, ...] = ("app_home_opened", "subteam_members_changed", "subteam_updated")

REQUIRED_SCOPES: frozenset[str] = frozenset(
    {s for s in METHOD_SCOPES.values() if s} | set(FEATURE_SCOPES.values())
)


def scope_for(method: str) -> str | None:
    """The scope `method` needs; KeyError (saying what to do) for a method not listed."""
    try:
        return METHOD_SCOPES[method]
    except KeyError:
        raise KeyError(
            f"{method} is not in bot/slack/scopes.py; add it there and its scope to manifest.yml"
        ) from None
