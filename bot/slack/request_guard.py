"""What stands between the network and Bolt: size, signature, replay, shape.

Each request is checked before anything parses it: a body over MAX_BODY is refused with
413 unread; an unsigned, badly signed or stale request with 401; a replay of one already
accepted (bot/slack/replays.py) with 401; a signed body that is not what Slack sends
with 400. Refusals are counted (`counts`, shown by /healthz), never logged one traceback
each: a flood of junk must cost a counter, not a disk.
"""

from __future__ import annotations

import io
import json
import logging
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import parse_qs

from slack_sdk.signature import SignatureVerifier

from bot.slack.replays import ReplayLedger

log = logging.getLogger(__name__)
Wsgi = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]
MAX_BODY = 1 << 20  # Slack's own payloads are a few kB; a modal's state stays far below


class RequestGuard:
    """WSGI middleware in front of the Bolt app."""

    def __init__(
        self, app: Wsgi, signing_secret: str, replays: ReplayLedger, *,
        max_body: int = MAX_BODY, clock: Callable[[], float] = time.time,
    ) -> None:  # fmt: skip
        self._app, self._replays, self._max = app, replays, max_body
        self._verifier = SignatureVerifier(signing_secret, clock=_Clock(clock))
        self._lock = threading.Lock()
        self.counts: Counter[str] = Counter()

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        refusal, body = self._check(environ)
        if refusal is not None:
            return self._refuse(start_response, *refusal)
        environ["wsgi.input"] = io.BytesIO(body)
        environ["CONTENT_LENGTH"] = str(len(body))
        return self._app(environ, start_response)

    def _check(self, environ: dict[str, Any]) -> tuple[tuple[str, str, str] | None, bytes]:
        try:
            length = int(environ.get("CONTENT_LENGTH") or 0)
        except ValueError:
            return ("400 Bad Request", "bad_length", "Content-Length is not a number"), b""
        if length > self._max:
            return ("413 Payload Too Large", "too_large", "body too large"), b""
        body = environ["wsgi.input"].read(length) if length else b""
        timestamp = environ.get("HTTP_X_SLACK_REQUEST_TIMESTAMP", "")
        signature = environ.get("HTTP_X_SLACK_SIGNATURE", "")
        if not timestamp or not signature:
            return ("401 Unauthorized", "unsigned", "unsigned request"), b""
        if not self._verifier.is_valid(body, timestamp, signature):
            return ("401 Unauthorized", "bad_signature", "invalid or expired signature"), b""
        if not _slack_shaped(body, environ.get("CONTENT_TYPE", "")):
            return ("400 Bad Request", "malformed", "not a Slack request body"), b""
        if not self._replays.first_time(signature):
            return ("401 Unauthorized", "replayed", "request already received"), b""
        return None, body

    def _refuse(self, start_response: Callable[..., Any], status: str, kind: str,
                text: str) -> list[bytes]:  # fmt: skip
        with self._lock:
            self.counts[kind] += 1
            first = self.counts[kind] == 1
        if first:  # one line per kind, so an operator learns it happens; /healthz counts
            log.warning("refused a request to the Slack endpoint (%s); /healthz counts them", kind)
        payload = text.encode()
        start_response(status, [("Content-Type", "text/plain"),
                                ("Content-Length", str(len(payload)))])  # fmt: skip
        return [payload]


def _slack_shaped(body: bytes, content_type: str) -> bool:
    """Whether Bolt can read `body`: JSON (events) is an object; a form's `payload`, if
    any, is a JSON object (interactions); other forms are slash commands."""
    try:
        text = body.decode()
        if content_type.startswith("application/json"):
            return isinstance(json.loads(text), dict)
        payload = parse_qs(text).get("payload")
        return payload is None or isinstance(json.loads(payload[0]), dict)
    except ValueError:  # UnicodeDecodeError and JSONDecodeError are ValueErrors
        return False


class _Clock:
    """slack_sdk's clock interface over a plain `time.time`-like callable."""

    def __init__(self, now: Callable[[], float]) -> None:
        self._now = now

    def now(self) -> float:
        return self._now()
