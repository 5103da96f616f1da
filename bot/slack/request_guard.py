"""What stands between the network and Bolt: size, signature, shape, replay; then storage.

Each request is checked before anything parses it: a body over MAX_BODY is refused with
413 unread; an unsigned, badly signed or stale request with 401; a signed body that is
not what Slack sends with 400. A request that passes is stored in the Slack inbox
(bot/slack/inbox.py) before Bolt sees it, and that insert is the replay check too: a
request stored before (within the inbox's keep time) is refused with 401. A menu's
search (block_suggestion) is not stored: it changes nothing, and its body has no id or
time of its own, so the same search typed twice in a second is the same signed request. Bolt's
listeners learn the row's id from the INBOX_HEADER header this sets; a stored request
no listener took on (Bolt refused it first, e.g. "reinstall this app" when auth.test
failed) is marked done once Bolt answered, so the inbox sweep does not do it later.
Refusals are
counted (`counts`, shown by /healthz), never logged one traceback each: a flood of junk
must cost a counter, not a disk.
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

from slack_bolt.request.internals import parse_body
from slack_sdk.signature import SignatureVerifier

from bot.slack.inbox import OTHER, Inbox, kind_of, signature_key

log = logging.getLogger(__name__)
Wsgi = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]
MAX_BODY = 1 << 20  # Slack's own payloads are a few kB; a modal's state stays far below
INBOX_HEADER = "x-opsloop-inbox"  # what Bolt's listeners read: the stored request's id
READ_ONLY = ("block_suggestion",)  # a menu's search: answered, never stored
_INBOX_ENVIRON = "HTTP_" + INBOX_HEADER.upper().replace("-", "_")


class RequestGuard:
    """WSGI middleware in front of the Bolt app."""

    def __init__(
        self, app: Wsgi, signing_secret: str, inbox: Inbox, *,
        max_body: int = MAX_BODY, clock: Callable[[], float] = time.time,
    ) -> None:  # fmt: skip
        self._app, self._inbox, self._max = app, inbox, max_body
        self._verifier = SignatureVerifier(signing_secret, clock=_Clock(clock))
        self._lock = threading.Lock()
        self.counts: Counter[str] = Counter()

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        environ.pop(_INBOX_ENVIRON, None)  # only this guard says a request is stored
        refusal, body = self._check(environ)
        if refusal is not None:
            return self._refuse(start_response, *refusal)
        environ["wsgi.input"] = io.BytesIO(body)
        environ["CONTENT_LENGTH"] = str(len(body))
        stored = environ.get(_INBOX_ENVIRON)
        try:
            return self._app(environ, start_response)
        finally:  # Bolt answered without our listener: not done later behind the person's back
            if stored is not None and self._inbox.unnamed(stored):
                self._finish(stored)

    def _finish(self, stored: str) -> None:
        try:
            self._inbox.finish(stored)
        except Exception:  # the database is away: Bolt's answer still goes out
            log.exception("could not mark slack request %s done", stored)

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
        parsed = _parsed(body, environ.get("CONTENT_TYPE", ""))
        if parsed is None:
            return ("400 Bad Request", "malformed", "not a Slack request body"), b""
        kind = kind_of(parsed)
        if kind == OTHER and parsed.get("type") in READ_ONLY:
            return None, body  # changes nothing; Slack sends legit identical ones (no id)
        key = signature_key(signature) if kind == OTHER else None
        stored = self._inbox.accept(kind, parsed, key)
        if stored is None:
            return ("401 Unauthorized", "replayed", "request already received"), b""
        if kind != OTHER:
            environ[_INBOX_ENVIRON] = stored.id
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


def _parsed(body: bytes, content_type: str) -> dict[str, Any] | None:
    """`body` as Bolt's listeners will see it, or None if Bolt cannot read it: JSON
    (events) is an object; a form's `payload`, if any, is a JSON object (interactions);
    other forms are slash commands."""
    try:
        text = body.decode()
        if content_type.startswith("application/json"):
            parsed = json.loads(text)
            return parsed if isinstance(parsed, dict) else None
        payload = parse_qs(text).get("payload")
        if payload is not None and not isinstance(json.loads(payload[0]), dict):
            return None
        parsed = parse_body(text, content_type)  # Bolt's own: the body its listeners get
    except ValueError:  # UnicodeDecodeError and JSONDecodeError are ValueErrors
        return None
    return parsed if isinstance(parsed, dict) else None


class _Clock:
    """slack_sdk's clock interface over a plain `time.time`-like callable."""

    def __init__(self, now: Callable[[], float]) -> None:
        self._now = now

    def now(self) -> float:
        return self._now()
