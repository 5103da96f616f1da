"""A Slack Web API test double: a real HTTP server on 127.0.0.1 that slack_sdk talks to.

    with SlackDouble(groups={"S0ONCALL": ["U0ALICE"]}) as slack:
        client = WebClient(token=slack.token, base_url=slack.api_url)
        client.chat_postMessage(channel="C0OPS", text="hi")
        slack.wait_for(lambda calls: slack.messages("C0OPS"))

It answers the methods the bot uses (auth.test, chat.postMessage/update/postEphemeral,
views.open/update/publish, usergroups.users.list, users.info, conversations.open,
conversations.history/replies with message `metadata` when `include_all_metadata` is set,
and the upload in three calls: files.getUploadURLExternal, a POST of the bytes to the
`upload_url` it answers (`/upload/<file id>` here; faults and storms apply to it as
method "upload"), files.completeUploadExternal; `files()` lists the shared uploads)
from form, JSON or query-string bodies with the token in a Bearer header or a
`token` field, as WebClient sends them. It records every call (faulted ones too),
keeps the current text and blocks of every message, refuses blocks and views
that break Slack's limits the way Slack does (tests/slack_limits.py), and can
answer 429 with Retry-After, 500s or API errors on demand or at random (seeded),
before the method ran or after it (`lost=True`: Slack did it, the answer was lost).
It also serves response_urls (`response_url()`), which Bolt's `respond()` posts to.

Socket Mode: `apps.connections.open` (called with the app-level token) answers the
ws:// URL of a WebSocket server the double runs on 127.0.0.1. A client that connects
gets Slack's `hello`; the test then pushes envelopes to it (`push_slash_command`,
`push_interactive`, `push_event`, `push_disconnect`), drops it (`close_sockets`) and
reads the acks it sends back (`acks`, `wait_for_ack`):

    envelope_id = slack.push_slash_command({"command": "/ops", "text": "help", ...})
    ack = slack.wait_for_ack(envelope_id)  # ack.payload: what an HTTP answer's body holds
"""

from __future__ import annotations

import contextlib
import itertools
import json
import random
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from email.message import Message as Headers
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, TypeVar
from urllib.parse import parse_qs, parse_qsl, urlsplit

from slack_limits import message_problems, view_problems
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response
from websockets.sync.server import Server, ServerConnection, serve

T = TypeVar("T")
# How long the wait_for* helpers wait by default. They return as soon as what they wait for
# arrives, so only a failing test waits this long; the bot on the other side is often
# another process, which a loaded CI machine can stall for seconds (5-10 s was too close).
WAIT_S = 30.0

_JSON_FIELDS = ("blocks", "view", "attachments", "metadata", "files")


@dataclass(frozen=True)
class Call:
    """One request the double received, and what it answered."""

    method: str  # "chat.postMessage", or "response_url" for posts to a response_url
    params: dict[str, Any]
    at: float  # time.monotonic() when it arrived
    status: int  # HTTP status of the answer
    response: dict[str, Any]
    token: str | None = None

    @property
    def ok(self) -> bool:
        return self.status == 200 and self.response.get("ok") is True

    @property
    def faulted(self) -> bool:
        """True when an injected fault answered instead of the method."""
        return self.response.get("_fault", False) is True


@dataclass
class Message:
    """A message as it looks now; `versions` holds every text/blocks it had, oldest first."""

    channel: str
    ts: str
    text: str | None
    blocks: list[dict[str, Any]] | None
    thread_ts: str | None
    user: str
    versions: list[dict[str, Any]] = field(default_factory=list)
    metadata: dict[str, Any] | None = None  # {"event_type", "event_payload"} as posted
    files: list[dict[str, Any]] | None = None  # a file share (files.completeUploadExternal)

    @property
    def edits(self) -> int:
        return len(self.versions) - 1


@dataclass
class Upload:
    """A file as files.getUploadURLExternal announced it; `data` once its bytes arrived,
    `shared` the (channel, thread_ts) each files.completeUploadExternal put it in."""

    id: str
    filename: str
    length: int
    alt_txt: str | None
    data: bytes | None = None
    title: str | None = None
    shared: list[tuple[str, str | None]] = field(default_factory=list)


@dataclass(frozen=True)
class Fault:
    """An answer instead of the method's: an HTTP status (429 gets Retry-After) or an API error."""

    status: int = 429
    retry_after: int | None = 1
    error: str | None = None  # with status 200: {"ok": false, "error": error}
    lost: bool = False  # the method runs, then this answer replaces its own


@dataclass(frozen=True)
class Ack:
    """What a Socket Mode client sent back for one envelope; `payload` is its answer, if any."""

    envelope_id: str
    payload: dict[str, Any] | None
    at: float  # time.monotonic() when it arrived


@dataclass
class _Storm:
    rate: float
    rng: random.Random
    statuses: tuple[int, ...]
    retry_after: int
    methods: frozenset[str] | None
    lost: bool = False


class SlackDouble:
    """The Slack Web API for tests; start it (or use `with`) and point a WebClient at `api_url`."""

    def __init__(
        self,
        *,
        token: str = "xoxb-test-token",
        groups: Mapping[str, Iterable[str]] | None = None,
        users: Mapping[str, Mapping[str, Any]] | None = None,
        team_id: str = "T0TEAM",
        bot_user_id: str = "U0BOT",
        bot_id: str = "B0BOT",
        validate: bool = True,
        app_token: str = "xapp-1-A0OPSLOOP-1-test",
        app_id: str = "A0OPSLOOP",
    ) -> None:
        self.token = token
        self.app_token, self.app_id = app_token, app_id
        self.team_id, self.bot_user_id, self.bot_id = team_id, bot_user_id, bot_id
        self.validate = validate
        self.latency = 0.0  # seconds every answer waits, to play a slow Slack
        self._groups = {g: list(u) for g, u in (groups or {}).items()}
        self._users = {u: dict(p) for u, p in (users or {}).items()}
        self._lock = threading.RLock()
        self._changed = threading.Condition(self._lock)
        self._calls: list[Call] = []
        self._faults: dict[str, deque[Fault]] = {}
        self._storm: _Storm | None = None
        self._messages: dict[tuple[str, str], Message] = {}
        self._ephemerals: list[dict[str, Any]] = []
        self._views: dict[str, dict[str, Any]] = {}
        self._homes: dict[str, dict[str, Any]] = {}
        self._responses: dict[str, list[dict[str, Any]]] = {}
        self._used_triggers: set[str] = set()
        self._uploads: dict[str, Upload] = {}
        self._counter = itertools.count(1)
        self._last_ts = 0  # microseconds of the newest ts handed out
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        # Socket Mode: the WebSocket server starts on the first apps.connections.open
        self._ws_server: Server | None = None
        self._ws_thread: threading.Thread | None = None
        self._tickets: set[str] = set()  # issued by apps.connections.open, each used once
        self._sockets: list[ServerConnection] = []  # greeted and still open, oldest first
        self._connections = 0  # how many clients ever got a hello
        self._envelopes: list[dict[str, Any]] = []
        self._acks: list[Ack] = []

    # -- life cycle -------------------------------------------------------------

    def start(self) -> SlackDouble:
        server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        server.daemon_threads = True
        server.double = self  # type: ignore[attr-defined]
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._ws_server is not None:
            self._ws_server.shutdown()  # closes the open sockets and waits for their threads
        if self._ws_thread is not None:
            self._ws_thread.join(timeout=5)
        self._ws_server = self._ws_thread = None
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._server = self._thread = None

    def __enter__(self) -> SlackDouble:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        assert self._server is not None, "start the double first"
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    @property
    def api_url(self) -> str:
        """What to give WebClient(base_url=...) and SLACK_API_URL."""
        return self.url + "/api/"

    def response_url(self, name: str = "default") -> str:
        """A response_url whose posts are kept under `name` (see `responses`)."""
        return f"{self.url}/response/{name}"

    # -- set-up -----------------------------------------------------------------

    def set_group(self, group_id: str, users: Iterable[str]) -> None:
        with self._lock:
            self._groups[group_id] = list(users)

    def add_user(self, user_id: str, **profile: Any) -> None:
        with self._lock:
            self._users[user_id] = profile

    def fail_next(
        self,
        method: str,
        *,
        status: int = 429,
        retry_after: int | None = 1,
        error: str | None = None,
        times: int = 1,
        lost: bool = False,
    ) -> None:
        """Answer the next `times` calls of `method` with a fault instead of the method's
        answer; with `lost`, after doing what the method does (an answer lost on the way)."""
        with self._lock:
            queue = self._faults.setdefault(method, deque())
            queue.extend(Fault(status, retry_after, error, lost) for _ in range(times))

    def storm(
        self,
        rate: float,
        *,
        seed: int = 0,
        statuses: Iterable[int] = (429, 500),
        retry_after: int = 0,
        methods: Iterable[str] | None = None,
        lost: bool = False,
    ) -> None:
        """From now on fail a `rate` share of calls (of `methods`, default all), seeded;
        with `lost`, the method is done first and only its answer is replaced."""
        with self._lock:
            self._storm = _Storm(rate, random.Random(seed), tuple(statuses), retry_after,
                                 frozenset(methods) if methods is not None else None,
                                 lost)  # fmt: skip

    def calm(self) -> None:
        """End a storm and drop the faults still queued."""
        with self._lock:
            self._storm = None
            self._faults.clear()

    # -- what happened ----------------------------------------------------------

    def calls(self, method: str | None = None, *, ok: bool | None = None) -> list[Call]:
        """Calls received so far, oldest first; only `method`'s, only (not) ok ones if asked."""
        with self._lock:
            return [
                c for c in self._calls
                if (method is None or c.method == method) and (ok is None or c.ok == ok)
            ]  # fmt: skip

    def message(self, channel: str, ts: str) -> Message:
        with self._lock:
            try:
                return self._messages[(channel, ts)]
            except KeyError:
                known = sorted(self._messages)
                raise KeyError(f"no message {channel}/{ts}; there are {known}") from None

    def messages(self, channel: str | None = None) -> list[Message]:
        """Top-level messages (no thread replies), oldest first."""
        with self._lock:
            return sorted(
                (m for m in self._messages.values()
                 if (channel is None or m.channel == channel) and m.thread_ts in (None, m.ts)),
                key=lambda m: float(m.ts),
            )  # fmt: skip

    def thread(self, channel: str, thread_ts: str) -> list[Message]:
        """Replies in a thread, oldest first (without the parent)."""
        with self._lock:
            return sorted(
                (m for m in self._messages.values()
                 if m.channel == channel and m.thread_ts == thread_ts and m.ts != thread_ts),
                key=lambda m: float(m.ts),
            )  # fmt: skip

    def files(self, channel: str | None = None) -> list[Upload]:
        """Uploads shared by files.completeUploadExternal (into `channel`, if given)."""
        with self._lock:
            return [
                u
                for u in self._uploads.values()
                if u.shared and (channel is None or any(c == channel for c, _ in u.shared))
            ]

    def ephemerals(self, user: str | None = None) -> list[dict[str, Any]]:
        with self._lock:
            return [e for e in self._ephemerals if user is None or e.get("user") == user]

    def view(self, view_id: str) -> dict[str, Any]:
        with self._lock:
            return self._views[view_id]

    def views(self) -> list[dict[str, Any]]:
        """Every modal opened, oldest first, as it looks now."""
        with self._lock:
            return list(self._views.values())

    def home(self, user_id: str) -> dict[str, Any] | None:
        with self._lock:
            return self._homes.get(user_id)

    def responses(self, name: str = "default") -> list[dict[str, Any]]:
        """What was posted to `response_url(name)`, oldest first."""
        with self._lock:
            return list(self._responses.get(name, ()))

    def wait_for(
        self, predicate: Callable[[list[Call]], T], *, timeout: float = WAIT_S, what: str = ""
    ) -> T:
        """Wait until `predicate(calls)` is truthy and return it; AssertionError at `timeout`.

        The predicate is re-checked whenever a call arrives (and at least every 50 ms).
        """

        def last_calls() -> str:
            seen = ", ".join(f"{c.method}:{c.status}" for c in self._calls[-20:])
            return f"last calls: {seen or 'none'}"

        return self._wait(lambda: predicate(list(self._calls)), timeout,
                          what or str(predicate), detail=last_calls)  # fmt: skip

    def wait_for_calls(self, method: str, count: int = 1, *, timeout: float = WAIT_S) -> list[Call]:
        """Wait until `count` successful calls of `method` arrived; return them."""

        def enough(calls: list[Call]) -> list[Call] | None:
            done = [c for c in calls if c.method == method and c.ok]
            return done if len(done) >= count else None

        return self.wait_for(enough, timeout=timeout, what=f"{count} ok {method} call(s)")

    # -- Socket Mode ------------------------------------------------------------

    def socket_connections(self) -> int:
        """How many Socket Mode clients are connected (greeted and not closed) now."""
        with self._lock:
            return len(self._sockets)

    def wait_for_socket(self, count: int = 1, *, timeout: float = WAIT_S) -> None:
        """Wait until `count` clients in all have connected and been greeted."""
        self._wait(lambda: self._connections >= count and self._sockets, timeout,
                   f"{count} Socket Mode connection(s)")  # fmt: skip

    def push(
        self,
        kind: str,
        payload: Mapping[str, Any],
        *,
        accepts_response_payload: bool = False,
        **extra: Any,
    ) -> str:
        """Send an envelope of type `kind` to the newest connection; return its envelope_id."""
        with self._lock:
            if not self._sockets:
                raise AssertionError("no Socket Mode client is connected")
            socket = self._sockets[-1]
            envelope_id = f"{next(self._counter):08x}-5e7e-4c1d-9f00-0000000ed9e1"
            envelope = {"envelope_id": envelope_id, "type": kind, "payload": dict(payload),
                        "accepts_response_payload": accepts_response_payload, **extra}  # fmt: skip
            self._envelopes.append(envelope)
        socket.send(json.dumps(envelope))
        return envelope_id

    def push_slash_command(self, fields: Mapping[str, Any]) -> str:
        """A slash command: `fields` as Slack would have form-posted them over HTTP."""
        return self.push("slash_commands", fields, accepts_response_payload=True)

    def push_interactive(self, payload: Mapping[str, Any]) -> str:
        """A block_actions, view_submission, shortcut... payload (the JSON of `payload=`)."""
        answers = payload.get("type") in ("view_submission", "block_suggestion")
        return self.push("interactive", payload, accepts_response_payload=answers)

    def push_event(self, body: Mapping[str, Any], *, retry_attempt: int = 0) -> str:
        """An Events API `event_callback` body."""
        return self.push("events_api", body, retry_attempt=retry_attempt,
                         retry_reason="" if not retry_attempt else "timeout")  # fmt: skip

    def push_disconnect(self, reason: str = "refresh_requested") -> None:
        """Ask the newest client to reconnect, as Slack does every few hours."""
        with self._lock:
            socket = self._sockets[-1]
        socket.send(json.dumps({"type": "disconnect", "reason": reason,
                                "debug_info": {"host": "applink-double"}}))  # fmt: skip

    def close_sockets(self, code: int = 1001, reason: str = "going away") -> None:
        """Close every open connection from Slack's side, without a `disconnect` first."""
        with self._lock:
            sockets = list(self._sockets)
        for socket in sockets:
            socket.close(code, reason)

    def envelopes(self) -> list[dict[str, Any]]:
        """Every envelope pushed, oldest first."""
        with self._lock:
            return list(self._envelopes)

    def acks(self, envelope_id: str | None = None) -> list[Ack]:
        """Acks received, oldest first; only `envelope_id`'s if given."""
        with self._lock:
            return [a for a in self._acks if envelope_id in (None, a.envelope_id)]

    def wait_for_ack(self, envelope_id: str, *, timeout: float = WAIT_S) -> Ack:
        """Wait for the client's ack of `envelope_id` and return it."""
        return self._wait(lambda: next(iter(self.acks(envelope_id)), None), timeout,
                          f"the ack of envelope {envelope_id}")  # fmt: skip

    def _wait(
        self,
        predicate: Callable[[], T],
        timeout: float,
        what: str,
        detail: Callable[[], str] | None = None,
    ) -> T:
        """`predicate()`'s first truthy value, re-checked whenever something arrives (and at
        least every 50 ms); AssertionError at `timeout`, with `detail()` if given."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while not (result := predicate()):
                left = deadline - time.monotonic()
                if left <= 0:
                    more = f"; {detail()}" if detail else ""
                    raise AssertionError(f"timed out after {timeout}s waiting for {what}{more}")
                self._changed.wait(min(left, 0.05))
            return result

    def _connections_open(self, token: str) -> dict[str, Any]:
        if token.startswith("xoxb-") or token.startswith("xoxp-"):
            return {"ok": False, "error": "not_allowed_token_type"}
        if token != self.app_token:
            return {"ok": False, "error": "invalid_auth"}
        if self._ws_server is None:
            # no compression: the slack_sdk built-in client does not offer it either
            server = serve(self._socket_session, "127.0.0.1", 0, compression=None,
                           process_request=self._check_ticket, close_timeout=2)  # fmt: skip
            self._ws_server = server
            self._ws_thread = threading.Thread(target=server.serve_forever,
                                               name="slack-double-ws", daemon=True)  # fmt: skip
            self._ws_thread.start()
        ticket = f"{next(self._counter):032x}"
        self._tickets.add(ticket)
        port = self._ws_server.socket.getsockname()[1]
        url = f"ws://127.0.0.1:{port}/link/?ticket={ticket}&app_id={self.app_id}"
        return {"ok": True, "url": url}

    def _check_ticket(self, connection: ServerConnection, request: Request) -> Response | None:
        """Refuse a URL that apps.connections.open did not issue, or one used already."""
        ticket = parse_qs(urlsplit(request.path).query).get("ticket", [""])[0]
        with self._lock:
            if ticket in self._tickets:
                self._tickets.discard(ticket)
                return None
        return connection.respond(401, "invalid or used ticket\n")

    def _socket_session(self, connection: ServerConnection) -> None:
        """One client's connection, on its own thread: greet, then record what it sends."""
        with self._lock:
            hello = {"type": "hello", "num_connections": len(self._sockets) + 1,
                     "debug_info": {"host": "applink-double", "build_number": 1,
                                    "approximate_connection_time": 18060},
                     "connection_info": {"app_id": self.app_id}}  # fmt: skip
        try:
            connection.send(json.dumps(hello))
            with self._changed:
                self._sockets.append(connection)
                self._connections += 1
                self._changed.notify_all()
            for raw in connection:
                self._socket_message(raw)
        except ConnectionClosed:
            pass  # the client went away: what the test checks is what it acked before
        finally:
            with self._changed:
                if connection in self._sockets:
                    self._sockets.remove(connection)
                self._changed.notify_all()

    def _socket_message(self, raw: str | bytes) -> None:
        try:
            message = json.loads(raw)
        except ValueError:
            return  # not JSON: Slack ignores it too
        if not isinstance(message, dict) or "envelope_id" not in message:
            return
        ack = Ack(str(message["envelope_id"]), message.get("payload"), time.monotonic())
        with self._changed:
            self._acks.append(ack)
            self._changed.notify_all()

    # -- serving ----------------------------------------------------------------

    def respond(
        self, verb: str, path: str, headers: Headers, body: bytes
    ) -> tuple[int, dict[str, str], dict[str, Any]]:
        """Answer one HTTP request: (status, extra headers, JSON body)."""
        if self.latency:
            time.sleep(self.latency)
        arrived = time.monotonic()
        url = urlsplit(path)
        if url.path.startswith("/upload/"):  # raw bytes, not a Web API call
            return self._upload(url.path.removeprefix("/upload/"), body, arrived)
        params = _params(url.query, headers.get("Content-Type", ""), body)
        token = _bearer(headers.get("Authorization")) or params.pop("token", None)
        if url.path.startswith("/response/"):
            return self._response_url(url.path.removeprefix("/response/"), params, arrived)
        if not url.path.startswith("/api/"):
            return 404, {}, {"ok": False, "error": "not_found"}
        method = url.path.removeprefix("/api/")
        with self._lock:
            fault = self._next_fault(method)
            if fault is not None:
                if fault.lost:
                    self._call(method, params, token)
                status, extra, answer = _fault_answer(fault)
            else:
                status, extra, answer = 200, {}, self._call(method, params, token)
            self._record(Call(method, params, arrived, status, answer, token))
        answer = {k: v for k, v in answer.items() if k != "_fault"}
        return status, extra, answer

    def _response_url(
        self, name: str, params: dict[str, Any], arrived: float
    ) -> tuple[int, dict[str, str], dict[str, Any]]:
        with self._lock:
            self._responses.setdefault(name, []).append(params)
            call = Call("response_url", {**params, "_name": name}, arrived, 200, {"ok": True})
            self._record(call)
        return 200, {}, {"ok": True}

    def _upload(self, file_id: str, body: bytes, arrived: float) -> tuple[int, dict[str, str], Any]:
        """The upload URL: takes the bytes once their length is the one announced."""
        with self._lock:
            fault, upload = self._next_fault("upload"), self._uploads.get(file_id)
            if fault is not None:
                status, extra, answer = _fault_answer(fault)
            elif upload is None:
                status, extra, answer = 404, {}, {"ok": False, "error": "file_not_found"}
            elif len(body) != upload.length:
                status, extra, answer = 400, {}, {"ok": False, "error": "length_mismatch"}
            else:
                upload.data = body
                status, extra, answer = 200, {}, {"ok": True, "text": f"OK - {len(body)}"}
            self._record(Call("upload", {"file_id": file_id, "bytes": len(body)}, arrived,
                              status, answer))  # fmt: skip
        return status, extra, {k: v for k, v in answer.items() if k != "_fault"}

    def _get_upload_url(self, params: dict[str, Any]) -> dict[str, Any]:
        filename, length = params.get("filename"), str(params.get("length") or "")
        if not filename or not length.isdigit() or int(length) <= 0:
            return {"ok": False, "error": "invalid_arguments"}
        file_id = f"F{next(self._counter):08d}"
        self._uploads[file_id] = Upload(file_id, str(filename), int(length),
                                        params.get("alt_txt"))  # fmt: skip
        return {"ok": True, "upload_url": f"{self.url}/upload/{file_id}", "file_id": file_id}

    def _complete_upload(self, params: dict[str, Any]) -> dict[str, Any]:
        files = params.get("files")
        if not isinstance(files, list) or not files:
            return {"ok": False, "error": "invalid_arguments"}
        uploads = [self._uploads.get(str(f.get("id"))) for f in files]
        if any(u is None or u.data is None for u in uploads):
            return {"ok": False, "error": "file_not_found"}
        channel, thread_ts = params.get("channel_id"), params.get("thread_ts") or None
        if thread_ts and not channel:
            return {"ok": False, "error": "invalid_arguments"}
        for upload, spec in zip(uploads, files, strict=True):
            assert upload is not None
            upload.title = spec.get("title") or upload.filename
        if channel:  # a share is a message with `files` (Slack's file_share message)
            shown = [{"id": u.id, "name": u.filename, "title": u.title, "mimetype": "image/png"}
                     for u in uploads if u is not None]  # fmt: skip
            ts = self._ts()
            self._messages[(str(channel), ts)] = Message(
                str(channel), ts, "", None, thread_ts, self.bot_user_id,
                [{"text": "", "files": shown}], files=shown,
            )  # fmt: skip
            for upload in uploads:
                assert upload is not None
                upload.shared.append((str(channel), thread_ts))
        return {"ok": True, "files": [{"id": u.id, "title": u.title, "name": u.filename}
                                      for u in uploads if u is not None]}  # fmt: skip

    def _record(self, call: Call) -> None:
        self._calls.append(call)
        self._changed.notify_all()

    def _next_fault(self, method: str) -> Fault | None:
        queue = self._faults.get(method)
        if queue:
            return queue.popleft()
        storm = self._storm
        if storm is None or (storm.methods is not None and method not in storm.methods):
            return None
        if storm.rng.random() < storm.rate:
            return Fault(storm.rng.choice(storm.statuses), storm.retry_after, lost=storm.lost)
        return None

    def _call(self, method: str, params: dict[str, Any], token: str | None) -> dict[str, Any]:
        if not token:
            return {"ok": False, "error": "not_authed"}
        if method == "apps.connections.open":  # the one method that takes the app-level token
            return self._connections_open(token)
        if token != self.token:
            return {"ok": False, "error": "invalid_auth"}
        handler = _METHODS.get(method)
        if handler is None:
            return {"ok": False, "error": "unknown_method", "req_method": method}
        return handler(self, params)

    def _ts(self) -> str:
        """The posting time in epoch microseconds, as Slack's ts is; unique and increasing."""
        self._last_ts = max(int(time.time() * 1_000_000), self._last_ts + 1)
        return f"{self._last_ts // 1_000_000}.{self._last_ts % 1_000_000:06d}"

    # -- the methods ------------------------------------------------------------

    def _auth_test(self, params: dict[str, Any]) -> dict[str, Any]:
        return {"ok": True, "url": "https://opsloop-test.slack.com/", "team": "opsloop tests",
                "user": "opsloop", "team_id": self.team_id, "user_id": self.bot_user_id,
                "bot_id": self.bot_id, "is_enterprise_install": False}  # fmt: skip

    def _post_message(self, params: dict[str, Any]) -> dict[str, Any]:
        channel = str(params.get("channel") or "")
        if not channel:
            return {"ok": False, "error": "channel_not_found"}
        if problem := self._content_problem(params):
            return problem
        metadata = params.get("metadata")
        if metadata is not None and not _metadata_ok(metadata):
            return {"ok": False, "error": "invalid_metadata_format"}
        channel = _dm_channel(channel)
        ts = self._ts()
        thread_ts = params.get("thread_ts") or None
        content = {"text": params.get("text"), "blocks": params.get("blocks")}
        message = Message(channel, ts, content["text"], content["blocks"], thread_ts,
                          self.bot_user_id, [content], metadata)  # fmt: skip
        self._messages[(channel, ts)] = message
        shown = self._shown(message, metadata=True)
        return {"ok": True, "channel": channel, "ts": ts, "message": shown}

    def _update(self, params: dict[str, Any]) -> dict[str, Any]:
        key = (str(params.get("channel") or ""), str(params.get("ts") or ""))
        message = self._messages.get(key)
        if message is None:
            return {"ok": False, "error": "message_not_found"}
        if problem := self._content_problem(params):
            return problem
        if "text" in params:
            message.text = params["text"]
        if "blocks" in params:
            message.blocks = params["blocks"]
        message.versions.append({"text": message.text, "blocks": message.blocks})
        return {"ok": True, "channel": message.channel, "ts": message.ts,
                "text": message.text, "message": self._shown(message)}  # fmt: skip

    def _post_ephemeral(self, params: dict[str, Any]) -> dict[str, Any]:
        if not params.get("channel"):
            return {"ok": False, "error": "channel_not_found"}
        if not params.get("user"):
            return {"ok": False, "error": "user_not_in_channel"}
        if problem := self._content_problem(params):
            return problem
        ts = self._ts()
        self._ephemerals.append({**params, "message_ts": ts})
        return {"ok": True, "message_ts": ts}

    def _content_problem(self, params: Mapping[str, Any]) -> dict[str, Any] | None:
        if not self.validate:
            return None
        problems = message_problems(params)
        if not problems:
            return None
        error = problems[0].split(":")[0]
        if error not in ("no_text", "msg_too_long", "msg_blocks_too_long"):
            error = "invalid_blocks"
        return {"ok": False, "error": error, "errors": problems}

    def _shown(self, message: Message, *, metadata: bool = False) -> dict[str, Any]:
        shown: dict[str, Any] = {"type": "message", "user": self.bot_user_id, "bot_id": self.bot_id,
                                 "ts": message.ts, "text": message.text or ""}  # fmt: skip
        if message.blocks is not None:
            shown["blocks"] = message.blocks
        if message.thread_ts:
            shown["thread_ts"] = message.thread_ts
        if metadata and message.metadata is not None:
            shown["metadata"] = message.metadata
        if message.files is not None:
            shown.update(files=message.files, upload=True)
        return shown

    def _history(self, params: dict[str, Any]) -> dict[str, Any]:
        """conversations.history: top-level messages newest first, between oldest and latest."""
        channel = str(params.get("channel") or "")
        if channel[:1] not in ("C", "G", "D") or len(channel) < 3:  # any such id exists here
            return {"ok": False, "error": "channel_not_found"}
        found = [m for m in self._messages.values()
                 if m.channel == channel and m.thread_ts in (None, m.ts)]  # fmt: skip
        return self._page(found, params, newest_first=True)

    def _replies(self, params: dict[str, Any]) -> dict[str, Any]:
        """conversations.replies: the parent, then its replies, oldest first."""
        channel, ts = str(params.get("channel") or ""), str(params.get("ts") or "")
        if not channel or not ts:
            return {"ok": False, "error": "invalid_arguments"}
        if (channel, ts) not in self._messages:
            return {"ok": False, "error": "thread_not_found"}
        found = [m for m in self._messages.values()
                 if m.channel == channel and (m.ts == ts or m.thread_ts == ts)]  # fmt: skip
        return self._page(found, params, newest_first=False)

    def _page(
        self, found: list[Message], params: dict[str, Any], *, newest_first: bool
    ) -> dict[str, Any]:
        """One page of `found` as both methods page: oldest/latest/inclusive, limit, cursor."""
        inclusive = _flag(params.get("inclusive"))
        oldest, latest = float(params.get("oldest") or 0), float(params.get("latest") or 9e12)
        found = [m for m in found
                 if (oldest < float(m.ts) < latest)
                 or (inclusive and float(m.ts) in (oldest, latest))]  # fmt: skip
        found.sort(key=lambda m: float(m.ts), reverse=newest_first)
        limit = max(1, min(int(params.get("limit") or 100), 999))
        start = int(params.get("cursor") or 0)
        page = found[start : start + limit]
        more = start + limit < len(found)
        metadata = _flag(params.get("include_all_metadata"))
        cursor = str(start + limit) if more else ""
        return {"ok": True, "messages": [self._shown(m, metadata=metadata) for m in page],
                "has_more": more, "response_metadata": {"next_cursor": cursor}}  # fmt: skip

    def _views_open(self, params: dict[str, Any]) -> dict[str, Any]:
        trigger = params.get("trigger_id")
        if not trigger:
            return {"ok": False, "error": "invalid_arguments"}
        if trigger in self._used_triggers:
            return {"ok": False, "error": "expired_trigger_id"}
        self._used_triggers.add(trigger)
        return self._store_view(params.get("view"), view_id=None)

    def _views_update(self, params: dict[str, Any]) -> dict[str, Any]:
        view_id = params.get("view_id")
        if not view_id:
            by_external = [v for v in self._views.values()
                           if v.get("external_id") == params.get("external_id")]  # fmt: skip
            view_id = by_external[0]["id"] if by_external and params.get("external_id") else None
        if view_id not in self._views:
            return {"ok": False, "error": "not_found"}
        if params.get("hash") and params["hash"] != self._views[view_id]["hash"]:
            return {"ok": False, "error": "hash_conflict"}
        return self._store_view(params.get("view"), view_id=view_id)

    def _views_publish(self, params: dict[str, Any]) -> dict[str, Any]:
        user = params.get("user_id")
        if not user:
            return {"ok": False, "error": "invalid_arguments"}
        answer = self._store_view(params.get("view"), view_id=None, keep=False)
        if answer["ok"]:
            self._homes[user] = answer["view"]
        return answer

    def _store_view(self, view: Any, *, view_id: str | None, keep: bool = True) -> dict[str, Any]:
        if not isinstance(view, dict):
            return {"ok": False, "error": "invalid_arguments"}
        if self.validate and (problems := view_problems(view)):
            messages = [f"[ERROR] {p}" for p in problems]
            return {"ok": False, "error": "invalid_arguments",
                    "response_metadata": {"messages": messages}}  # fmt: skip
        n = next(self._counter)
        view_id = view_id or f"V{n:08d}"
        stored = {**view, "id": view_id, "team_id": self.team_id, "hash": f"{n}.hash",
                  "state": {"values": {}}, "bot_id": self.bot_id, "root_view_id": view_id,
                  "private_metadata": view.get("private_metadata", ""),
                  "callback_id": view.get("callback_id", "")}  # fmt: skip
        if keep:
            self._views[view_id] = stored
        return {"ok": True, "view": stored}

    def _usergroup_users(self, params: dict[str, Any]) -> dict[str, Any]:
        group = params.get("usergroup")
        if group not in self._groups:
            return {"ok": False, "error": "no_such_subteam"}
        return {"ok": True, "users": list(self._groups[group])}

    def _users_info(self, params: dict[str, Any]) -> dict[str, Any]:
        user = str(params.get("user") or "")
        if user in self._users:
            profile = self._users[user]
        elif user[:1] in ("U", "W") and len(user) > 2:
            profile = {}
        else:
            return {"ok": False, "error": "user_not_found"}
        name = profile.get("name", user.lower())
        return {"ok": True, "user": {
            "id": user, "team_id": self.team_id, "name": name, "deleted": False,
            "real_name": profile.get("real_name", name), "tz": profile.get("tz", "UTC"),
            "is_bot": False, "is_admin": profile.get("is_admin", False),
            "profile": {"display_name": name, "real_name": profile.get("real_name", name)},
        }}  # fmt: skip

    def _conversations_open(self, params: dict[str, Any]) -> dict[str, Any]:
        users = [u for u in str(params.get("users") or "").split(",") if u]
        if params.get("channel"):
            return {"ok": True, "channel": {"id": params["channel"]}}
        if not users:
            return {"ok": False, "error": "users_list_not_supplied"}
        if len(users) == 1:
            return {"ok": True, "channel": {"id": _dm_channel(users[0])}}
        return {"ok": True, "channel": {"id": "G" + "".join(sorted(u[1:] for u in users))[:20]}}


_METHODS: dict[str, Callable[[SlackDouble, dict[str, Any]], dict[str, Any]]] = {
    "auth.test": SlackDouble._auth_test,
    "chat.postMessage": SlackDouble._post_message,
    "chat.update": SlackDouble._update,
    "chat.postEphemeral": SlackDouble._post_ephemeral,
    "views.open": SlackDouble._views_open,
    "views.update": SlackDouble._views_update,
    "views.publish": SlackDouble._views_publish,
    "usergroups.users.list": SlackDouble._usergroup_users,
    "users.info": SlackDouble._users_info,
    "conversations.open": SlackDouble._conversations_open,
    "conversations.history": SlackDouble._history,
    "conversations.replies": SlackDouble._replies,
    "files.getUploadURLExternal": SlackDouble._get_upload_url,
    "files.completeUploadExternal": SlackDouble._complete_upload,
}


def _metadata_ok(metadata: Any) -> bool:
    """Slack's message metadata: an event_type string and an event_payload object."""
    return (isinstance(metadata, dict) and isinstance(metadata.get("event_type"), str)
            and isinstance(metadata.get("event_payload"), dict))  # fmt: skip


def _flag(value: Any) -> bool:
    """A boolean argument as WebClient sends it: true/1 in a form or query, or JSON true."""
    return value is True or str(value).lower() in ("true", "1")


def _dm_channel(channel: str) -> str:
    """Posting to a user id posts in the app's DM with them, as Slack does."""
    return "D" + channel[1:] if channel[:1] in ("U", "W") else channel


def _fault_answer(fault: Fault) -> tuple[int, dict[str, str], dict[str, Any]]:
    if fault.status == 200:
        return 200, {}, {"ok": False, "error": fault.error or "fatal_error", "_fault": True}
    headers = {}
    if fault.status == 429 and fault.retry_after is not None:
        headers["Retry-After"] = str(fault.retry_after)
    error = fault.error or ("ratelimited" if fault.status == 429 else "internal_error")
    return fault.status, headers, {"ok": False, "error": error, "_fault": True}


def _bearer(header: str | None) -> str | None:
    if header and header.lower().startswith("bearer "):
        return header[7:].strip() or None
    return None


def _params(query: str, content_type: str, body: bytes) -> dict[str, Any]:
    """Query string and body (JSON or form) merged; JSON-typed form fields decoded."""
    params: dict[str, Any] = dict(parse_qsl(query, keep_blank_values=True))
    text = body.decode("utf-8") if body else ""
    if "json" in content_type and text:
        params.update(json.loads(text))
    elif text:
        params.update(parse_qsl(text, keep_blank_values=True))
    for key in _JSON_FIELDS:
        if isinstance(params.get(key), str) and params[key]:
            with contextlib.suppress(ValueError):  # not JSON: keep the text
                params[key] = json.loads(params[key])
    return params


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        self._serve("GET")

    def do_POST(self) -> None:
        self._serve("POST")

    def _serve(self, verb: str) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        double: SlackDouble = self.server.double  # type: ignore[attr-defined]
        status, extra, answer = double.respond(verb, self.path, self.headers, body)
        data = json.dumps(answer).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        for name, value in extra.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        pass  # keep test output quiet
