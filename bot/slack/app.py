"""The Bolt app: listeners that store the request, ack, and hand the work to the bot's pool.

Handlers are thin by design (see bot/slack/handlers.py for what they do). Only
fast work happens before `ack()`: parsing a command, validating a modal so Slack
can show errors inline, and storing a command, click or submission in the inbox
(bot/slack/inbox.py, one short transaction), so what Slack saw acked survives a
crash. No Slack call runs on Bolt's listener pool before the ack.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from slack_bolt import Ack, App, BoltRequest
from slack_sdk import WebClient

from bot.slack import commands as cmds
from bot.slack import ids, suggestions
from bot.slack.handlers import Handlers
from bot.slack.inbox import CLICK, COMMAND, VIEW
from bot.slack.intake import Intake
from bot.slack.request_guard import INBOX_HEADER
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
    intake: Intake,
    listener_threads: int = 32,
) -> App:
    """The Bolt app with opsloop's listeners; each stores its request with `intake`, acks,
    and has `intake` do the work on the follow-up pool (App Home on `work`)."""
    app = App(
        client=client,
        signing_secret=signing_secret,
        request_verification_enabled=signing_secret is not None,
        token_verification_enabled=False,
        process_before_response=False,
        listener_executor=ThreadPoolExecutor(listener_threads, thread_name_prefix="bolt"),
        raise_error_for_unhandled_request=False,
    )
    app.command(SLASH_COMMAND)(_on_command(intake))
    app.action(re.compile(r"^opsloop\."))(_on_click(intake))
    app.options(ids.DECIDE_SEARCH)(_on_suggest(handlers))
    app.view(re.compile(r"^opsloop\."))(_on_submit(handlers, intake))
    app.event("app_home_opened")(_on_home(handlers, work))
    return app


def _stored(request: BoltRequest) -> str | None:
    """The inbox id the HTTP guard stored this request under; None in Socket Mode."""
    value = request.headers.get(INBOX_HEADER)
    return (value[0] if isinstance(value, list | tuple) else value) or None


def _stored_then_acked(
    intake: Intake, kind: str, body: Mapping[str, Any], ack: Ack, request: BoltRequest
) -> None:
    """Store, ack, then do: a crash after the ack leaves the request for a replica to do.
    A request stored before (a redelivery) is acked and not done again."""
    stored = intake.accept(kind, body, _stored(request))
    ack()
    if stored is not None:
        intake.submit(stored)


def _on_command(intake: Intake) -> Listener:
    def on_ops(ack: Ack, body: Mapping[str, Any], request: BoltRequest) -> None:
        try:
            command = cmds.parse_command(body.get("text", ""))
        except cmds.CommandError as exc:
            ack(response_type="ephemeral", text=f"{exc.message}\n```{exc.usage}```")
            intake.drop(_stored(request))
            return
        if isinstance(command, cmds.Help):
            ack(response_type="ephemeral", text=f"```{cmds.usage(command.topic)}```")
            intake.drop(_stored(request))
            return
        _stored_then_acked(intake, COMMAND, body, ack, request)

    return on_ops


def _on_click(intake: Intake) -> Listener:
    def on_click(ack: Ack, body: Mapping[str, Any], request: BoltRequest) -> None:
        _stored_then_acked(intake, CLICK, body, ack, request)

    return on_click


def _on_suggest(handlers: Handlers) -> Listener:
    """Options for a decision's search menu (bot/slack/suggestions.py): read before the ack,
    which carries them."""
    engine = handlers.orch.engine

    def on_suggest(ack: Ack, body: Mapping[str, Any]) -> None:
        ack(options=suggestions.suggest(lambda iid: queries.interaction(engine, iid), body))

    return on_suggest


def _on_submit(handlers: Handlers, intake: Intake) -> Listener:
    def on_submit(ack: Ack, body: Mapping[str, Any], request: BoltRequest) -> None:
        errors = handlers.validate_submission(body["view"])
        if errors:
            ack(**errors)
            intake.drop(_stored(request))
            return
        _stored_then_acked(intake, VIEW, body, ack, request)

    return on_submit


def _on_home(handlers: Handlers, work: ThreadPoolExecutor) -> Listener:
    def on_home(ack: Ack, event: Mapping[str, Any]) -> None:
        ack()
        if event.get("tab", "home") == "home":
            work.submit(handlers.home, event["user"])

    return on_home


__all__ = ["build_app", "ids"]
