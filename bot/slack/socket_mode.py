"""The Socket Mode transport: connect out to Slack with the app-level token; no public URL."""

from __future__ import annotations

import logging
import threading

from slack_bolt import App
from slack_bolt.adapter.socket_mode import SocketModeHandler
from slack_sdk.errors import SlackApiError

from bot.settings import SettingsError

log = logging.getLogger(__name__)


def serve_socket_mode(app: App, app_token: str) -> None:
    """Connect out to Slack and serve until interrupted.

    Connects before saying so: a refused app token (apps.connections.open) is a setting
    to fix, reported in one line, not a traceback after "connected". A WebSocket that
    fails to open is retried by the client every ping interval.
    """
    handler = SocketModeHandler(app, app_token)
    try:
        handler.connect()
    except SlackApiError as exc:
        error = exc.response.get("error", "error")
        raise SettingsError(
            f"Slack refused SLACK_APP_TOKEN ({error}); it must be the app's app-level token "
            "(xapp-...) with connections:write"
        ) from None
    try:
        if handler.client.is_connected():
            log.info("connected in Socket Mode")  # a log line: JSON logs stay one object a line
        else:
            log.warning("Socket Mode connection failed; retrying")
        threading.Event().wait()
    finally:
        handler.close()  # off the socket first: nothing new arrives while the bot stops
