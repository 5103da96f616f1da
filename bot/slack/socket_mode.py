"""The Socket Mode transport: connect out to Slack with the app-level token; no public URL."""

from __future__ import annotations

import contextlib
import logging
import socket
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
        close(handler)  # off the socket first: nothing new arrives while the bot stops


def close(handler: SocketModeHandler, wait_s: float = 5.0) -> None:
    """Close the Socket Mode connection, in at most `wait_s` s.

    slack_sdk's close waits for the connection's receive lock, which its receiver thread
    takes again for every read (3 s timeout): seen starving a SIGTERM's stop for over 20 s.
    Shutting the socket down first ends the read at once; the close is bounded anyway.
    """
    sock = getattr(handler.client.current_session, "sock", None)
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)
    closer = threading.Thread(target=handler.close, name="opsloop-socket-close", daemon=True)
    closer.start()
    closer.join(wait_s)
    if closer.is_alive():
        log.warning("the Socket Mode connection did not close within %g s; stopping anyway", wait_s)
