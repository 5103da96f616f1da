"""The HTTP transport: Slack's requests at `POST /slack/events`, and `GET /healthz`.

Served by waitress (a production WSGI server, not Bolt's development server). The
bot's follow-up work (what a command or click asks for) waits while requests are
being answered: see `AcksFirst`.
"""

from __future__ import annotations

import json
import logging
import socket
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from http import HTTPStatus
from typing import Any, TypeVar

from slack_bolt import App
from slack_bolt.adapter.wsgi import SlackRequestHandler
from waitress import create_server, wasyncore

from bot.slack.request_guard import MAX_BODY, RequestGuard
from bot.slack.scopes import EVENTS_PATH
from bot.slack.shutdown import Shutdown, Stopper

Wsgi = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]
log = logging.getLogger(__name__)
Endpoint = Callable[[], tuple[int, str, bytes]]  # a GET: status, content type, body
T = TypeVar("T")
QUIET_S = 0.005  # follow-up work starts once no request has been in the app for this long,
MAX_DELAY_S = 1.0  # or this long after it was submitted, whatever the traffic


class AcksFirst:
    """Holds the bot's follow-up work while Slack requests are being answered.

    Follow-up work (start a run, record an answer, reply) runs in this process, so it
    competes for the GIL with the acks of the requests still coming in: in a burst of 50
    requests at once it made acks 3-4x (SQLite) to 15x (PostgreSQL) slower than a bare
    Bolt app's (bench/slack_ack.py, docs/benchmarks.md). Slack's 3 s deadline is on the
    ack, so a follow-up waits until no request has been in the app for QUIET_S, but never
    longer than MAX_DELAY_S after it was submitted.
    """

    def __init__(self) -> None:
        self._busy = 0
        self._last = 0.0  # time.monotonic() when the app last finished a request
        self._changed = threading.Condition()

    @contextmanager
    def answering(self) -> Iterator[None]:
        with self._changed:
            self._busy += 1
        try:
            yield
        finally:
            with self._changed:
                self._busy -= 1
                self._last = time.monotonic()
                if not self._busy:  # not on every request: waking the waiters costs GIL time
                    self._changed.notify_all()

    def wait_turn(self, since: float) -> None:
        """Return once requests have been quiet for QUIET_S, or MAX_DELAY_S after `since`."""
        with self._changed:
            while (left := since + MAX_DELAY_S - time.monotonic()) > 0:
                quiet = time.monotonic() - self._last
                if not self._busy and quiet >= QUIET_S:
                    return
                self._changed.wait(left if self._busy else min(left, QUIET_S - quiet))


class FollowUps(ThreadPoolExecutor):
    """The pool the listeners hand their work to; each task waits for its turn first."""

    def __init__(self, threads: int, acks: AcksFirst) -> None:
        super().__init__(threads, thread_name_prefix="opsloop-bot")
        self._acks = acks

    def submit(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> Future[T]:
        since = time.monotonic()

        def after_acks() -> T:
            self._acks.wait_turn(since)
            return fn(*args, **kwargs)

        return super().submit(after_acks)


def wsgi_app(
    app: App,
    acks: AcksFirst,
    *,
    workflows: int,
    guard: Callable[[Wsgi], RequestGuard] | None = None,
    endpoints: Mapping[str, Endpoint] | None = None,
) -> Wsgi:
    """Slack's requests to the Bolt app (counted by `acks`) through `guard` (signature,
    size, replays: request_guard.py); a liveness check that says how many workflows were
    loaded and how many requests were refused, by reason; and `endpoints` (GET path ->
    status, type, body: /readyz, /metrics)."""
    handler = SlackRequestHandler(app, path=EVENTS_PATH)
    bolt: Wsgi = lambda environ, start_response: handler(environ, start_response)  # noqa: E731
    checked = guard(bolt) if guard is not None else None
    slack = checked or bolt

    def health() -> tuple[int, str, bytes]:
        refused = dict(checked.counts) if checked is not None else {}
        body = {"ok": True, "workflows": workflows, "refused": refused}
        return 200, "application/json", json.dumps(body).encode()

    gets: dict[str, Endpoint] = {"/healthz": health, **(endpoints or {})}

    def route(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        endpoint = gets.get(environ.get("PATH_INFO", ""))
        if endpoint is not None and environ.get("REQUEST_METHOD") == "GET":
            status, content_type, body = endpoint()
            start_response(f"{status} {HTTPStatus(status).phrase}",
                           [("Content-Type", content_type),
                            ("Content-Length", str(len(body)))])  # fmt: skip
            return [body]
        with acks.answering():
            return slack(environ, start_response)

    return route


def serve_http(
    wsgi: Wsgi, listener: socket.socket, threads: int, stopper: Stopper | None = None
) -> None:
    """Serve `wsgi` on `listener` (bound before start-up: a port in use stops `serve`
    before anything runs) until interrupted, saying where. With `stopper`, a stop signal
    closes the server from its own loop and this raises Shutdown once it has."""
    sockets: dict[int, Any] = {}  # waitress's socket map, ours so a stop can close it
    # waitress refuses a larger body (chunked ones too) before the app sees it
    server = create_server(wsgi, map=sockets, sockets=[listener], threads=threads,
                           max_request_body_size=MAX_BODY)  # fmt: skip
    if stopper is not None:
        stopper.on_stop(lambda: server.trigger.pull_trigger(lambda: wasyncore.close_all(sockets)))
    host, port = listener.getsockname()[:2]
    log.info("listening on http://%s:%s%s", host, port, EVENTS_PATH)
    try:
        server.run()
    finally:
        server.close()
        server.task_dispatcher.shutdown()
    if stopper is not None and stopper.signal is not None:
        raise Shutdown(stopper.signal)


@contextmanager
def http_in_background(
    wsgi: Wsgi, host: str = "127.0.0.1", port: int = 0, threads: int = 16
) -> Iterator[str]:
    """`wsgi` behind waitress on a thread of its own (tests, benchmarks, embedding);
    yields the events URL. Stops cleanly: the server closes its sockets on its own
    thread, so no select() is left waiting on a closed one."""
    sockets: dict[int, Any] = {}  # waitress's socket map, ours so we can close it
    server = create_server(wsgi, map=sockets, host=host, port=port, threads=threads,
                           max_request_body_size=MAX_BODY)  # fmt: skip
    thread = threading.Thread(target=server.run, name="opsloop-http", daemon=True)
    thread.start()
    try:
        yield f"http://{host}:{server.effective_port}{EVENTS_PATH}"
    finally:
        try:
            server.trigger.pull_trigger(lambda: wasyncore.close_all(sockets))
        except OSError:  # its loop already closed the trigger's socket: nothing to wake
            wasyncore.close_all(sockets)
        thread.join(10)
        server.task_dispatcher.shutdown()
