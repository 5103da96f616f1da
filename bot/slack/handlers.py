"""What `/ops` commands, clicks and modal submissions do, after Bolt has acked them.

These run on the bot's own work pool, never on Bolt's listener pool, so a slow
database or Slack call can never delay another request's ack. Each handler
parses a payload into a typed value, calls one orchestrator function and
replies through the request's response_url (ephemeral, no scope needed).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from slack_sdk import WebClient

from bot.settings import SlackSettings
from bot.slack import commands as cmds
from bot.slack.command_handlers import CommandHandlers
from bot.slack.interaction_handlers import InteractionHandlers
from bot.slack.replies import Respond
from orchestrator.engine import Orchestrator


class Handlers:
    """The one object the listeners and the intake call: `/ops` and App Home
    (command_handlers.py), clicks and modal submissions (interaction_handlers.py)."""

    def __init__(self, orch: Orchestrator, client: WebClient, settings: SlackSettings) -> None:
        self.orch, self.client, self.settings = orch, client, settings
        self._commands = CommandHandlers(orch, client)
        self._interactions = InteractionHandlers(orch, client)

    def command(self, command: cmds.Command, body: Mapping[str, Any], respond: Respond) -> None:
        """Do `/ops <command>` and answer through `respond`."""
        self._commands.command(command, body, respond)

    def home(self, user: str) -> None:
        """Publish the App Home tab for `user`."""
        self._commands.home(user)

    def action(self, body: Mapping[str, Any], respond: Respond) -> None:
        """Do what a clicked button asks and answer through `respond`."""
        self._interactions.action(body, respond)

    def validate_submission(self, view: Mapping[str, Any]) -> dict[str, Any] | None:
        """Slack's `response_action: errors` payload when the form is wrong, else None."""
        return self._interactions.validate_submission(view)

    def submission(self, body: Mapping[str, Any]) -> None:
        """Apply a modal submission that `validate_submission` let through."""
        self._interactions.submission(body)
