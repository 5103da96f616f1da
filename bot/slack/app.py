"""The Bolt app: listeners that ack at once and hand the work to the bot's own pool.

Handlers are thin by design (see bot/slack/handlers.py for what they do). Only
pure, fast work happens before `ack()`: parsing a command, validating a modal
so Slack can show errors inline. No Slack or database call runs on Bolt's
listener pool before the ack.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from slack_bolt import Ack, App, Respond
from slack_sdk import WebClient

from bot.slack import commands as cmds
from bot.slack import ids, suggestions
from bot.slack.handlers import Handlers
from bot.slack.scopes import SLASH_COMMAND
from orchestrator import queries

log = logging.getLogger(__name__)
Listener = Callable[..., None]


def build_app(
    handlers: Handlers,
    client: WebClient,
    *,
    signing_secret: str | None,
    work: ThreadPoolExecutor,
    listener_threads: int = 32,
) -> App:
    """The Bolt app with opsloop's listeners; each acks at once and hands its work to `work`."""
    app = App(
        client=client,
        signing_secret=signing_secret,
        request_verification_enabled=signing_secret is not None,
        token_verification_enabled=False,
        process_before_response=False,
        listener_executor=ThreadPoolExecutor(listener_threads, thread_name_prefix="bolt"),
        raise_error_for_unhandled_request=False,
    )
    app.command(SLASH_COMMAND)(_on_command(handlers, work))
    app.action(re.compile(r"^opsloop\."))(_on_click(handlers, work))
    app.options(ids.DECIDE_SEARCH)(_on_suggest(handlers))
    app.view(re.compile(r"^opsloop\."))(_on_submit(handlers, work))
    app.event("app_home_opened")(_on_home(handlers, work))
    return app


def _on_command(handlers: Handlers, work: ThreadPoolExecutor) -> Listener:
    def on_ops(ack: Ack, body: Mapping[str, Any], respond: Respond) -> None:
        try:
            command = cmds.parse_command(body.get("text", ""))
        except cmds.CommandError as exc:
            ack(response_type="ephemeral", text=f"{exc.message}\n```{exc.usage}```")
            return
        if isinstance(command, cmds.Help):
            ack(response_type="ephemeral", text=f"```{cmds.usage(command.topic)}```")
            return
        ack()
        work.submit(handlers.command, command, body, respond)

    return on_ops


def _on_click(handlers: Handlers, work: ThreadPoolExecutor) -> Listener:
    def on_click(ack: Ack, body: Mapping[str, Any], respond: Respond) -> None:
        ack()
        work.submit(handlers.action, body, respond)

    return on_click


def _on_suggest(handlers: Handlers) -> Listener:
    """Options for a decision's search menu (bot/slack/suggestions.py): read before the ack,
    which carries them."""
    engine = handlers.orch.engine

    def on_suggest(ack: Ack, body: Mapping[str, Any]) -> None:
        ack(options=suggestions.suggest(lambda iid: queries.interaction(engine, iid), body))

    return on_suggest


def _on_submit(handlers: Handlers, work: ThreadPoolExecutor) -> Listener:
    def on_submit(ack: Ack, body: Mapping[str, Any]) -> None:
        errors = handlers.validate_submission(body["view"])
        if errors:
            ack(**errors)
            return
        ack()
        work.submit(handlers.submission, body)

    return on_submit


def _on_home(handlers: Handlers, work: ThreadPoolExecutor) -> Listener:
    def on_home(ack: Ack, event: Mapping[str, Any]) -> None:
        ack()
        if event.get("tab", "home") == "home":
            work.submit(handlers.home, event["user"])

    return on_home


__all__ = ["build_app", "ids"]
