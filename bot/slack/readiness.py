"""What `/readyz` answers, and the checks `serve` makes before it starts.

Ready means: the database answers and its schema is this release's, Slack accepted
the bot token (auth.test), and the timers and the schedule loop run. `/healthz` only
says the process is alive; an orchestrator (Kubernetes) routes traffic on `/readyz`.
"""

from __future__ import annotations

import contextlib
import errno
import json
import socket
import threading
import time
from collections.abc import Callable

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from sqlalchemy.engine import Engine

from bot.settings import SettingsError
from storage.schema import current_revision, head_revision

RECHECK_S = 30.0  # how often an unreachable Slack is asked again, at most


class Readiness:
    def __init__(self, engine: Engine, client: WebClient,
                 liveness: Callable[[], dict[str, bool]]) -> None:  # fmt: skip
        self._engine, self._client, self._liveness = engine, client, liveness
        self._head = head_revision()
        self._slack: str | None = "auth.test not called yet"  # None: the token was accepted
        self._slack_at = float("-inf")
        self._lock = threading.Lock()

    def check_token(self) -> None:
        """auth.test now; SettingsError (one line) if Slack refuses the bot token. An
        unreachable Slack is not fatal: /readyz says so, and asks again later."""
        with self._lock:
            self._slack_at = time.monotonic()
            try:
                self._client.auth_test()
            except SlackApiError as exc:
                error = exc.response.get("error", "error")
                self._slack = f"Slack refused the bot token ({error})"
                raise SettingsError(
                    f"Slack refused SLACK_BOT_TOKEN ({error}); copy the Bot User OAuth Token "
                    "(xoxb-...) from OAuth & Permissions, and reinstall the app if it was revoked"
                ) from None
            except OSError as exc:  # connection refused, DNS, timeout
                self._slack = f"Slack did not answer auth.test ({type(exc).__name__})"
                return
            self._slack = None

    def checks(self) -> dict[str, str]:
        """Each check's name -> "ok" or what is wrong."""
        found = {"database": self._database()}
        if self._slack is not None and time.monotonic() - self._slack_at > RECHECK_S:
            with contextlib.suppress(SettingsError):  # a refusal is said in the check
                self.check_token()
        found["slack"] = self._slack or "ok"
        for name, running in self._liveness().items():
            found[name] = "ok" if running else "not running"
        return found

    def _database(self) -> str:
        try:
            current = current_revision(self._engine)
        except Exception as exc:  # any driver error means "not ready", said in one line
            return f"does not answer ({type(exc).__name__})"
        if current != self._head:
            return f"schema is at {current}, this release needs {self._head}: opsloop db upgrade"
        return "ok"

    def endpoint(self) -> tuple[int, str, bytes]:
        """200 with every check ok, else 503 naming the failing ones."""
        checks = self.checks()
        failing = sorted(name for name, state in checks.items() if state != "ok")
        body = json.dumps({"ready": not failing, "failing": failing, "checks": checks})
        return (503 if failing else 200), "application/json", body.encode()


def listen(host: str, port: int) -> socket.socket:
    """The HTTP port, bound before anything starts; SettingsError if it is taken."""
    try:
        return socket.create_server((host, port), backlog=1024)
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            raise SettingsError(
                f"port {port} on {host} is already in use (another opsloop serve?); stop what "
                "listens there or choose another with PORT or --port"
            ) from None
        raise SettingsError(f"cannot listen on {host}:{port} ({exc.strerror})") from None
