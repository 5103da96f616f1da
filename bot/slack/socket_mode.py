"""The Socket Mode transport: connect out to Slack with the app-level token; no public URL."""

from __future__ import annotations

import logging
import time

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
        # Wait in short sleeps, not on one untimed lock: a signal the kernel hands to
        # another thread only runs its Python handler when the main thread runs again,
        # so an untimed wait could ignore SIGTERM until something else woke it (seen: 20 s).
        while True:
            time.sleep(0.5)
    finally:
        handler.close()  # off the socket first: nothing new arrives while the bot stops
