"""`opsloop serve`: the orchestrator, the outbox and the Bolt app in one process.

HTTP mode serves `POST /slack/events` and `GET /healthz` with waitress (a
production WSGI server, not Bolt's development server); Socket Mode connects
out with the app-level token instead and needs no public URL.

In HTTP mode the bot's follow-up work (what a command or click asks for) waits
while requests are being answered: see `_AcksFirst`.
"""

from __future__ import annotations

import gc
import json
import logging
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, TypeVar

from slack_bolt import App
from slack_bolt.adapter.wsgi import SlackRequestHandler
from sqlalchemy.engine import Engine

from bot.runtime import Now, build_orchestrator, database, static_directory, workflows
from bot.settings import Settings, SettingsError, SlackSettings
from bot.slack.app import build_app
from bot.slack.delivery import SlackDelivery, web_client
from bot.slack.directory import CombinedDirectory, SlackDirectory
from bot.slack.frontend import SlackFrontEnd
from bot.slack.handlers import Handlers
from bot.slack.outbox import Dispatcher, Outbox
from bot.slack.scopes import EVENTS_PATH
from orchestrator.engine import Orchestrator
from orchestrator.queries import interaction
from orchestrator.workflow.definitions import Workflow
from storage.types import utcnow

log = logging.getLogger(__name__)
Wsgi = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]
T = TypeVar("T")
QUIET_S = 0.005  # follow-up work starts once no request has been in the app for this long,
MAX_DELAY_S = 1.0  # or this long after it was submitted, whatever the traffic


@dataclass
class Bot:
    """Everything `serve` runs, built and wired; `start()` it, then `stop()` it."""

    orch: Orchestrator
    outbox: Outbox
    dispatcher: Dispatcher
    app: App
    wsgi: Wsgi
    work: ThreadPoolExecutor

    def start(self) -> None:
        """The dispatcher first, the orchestrator last: what recovery reports at start-up
        (a question about a step cut off by a crash) goes to Slack like anything else."""
        self.dispatcher.start()
        self.orch.start(recover=True)

    def stop(self) -> None:
        """In reverse: no follow-up work left to reach the orchestrator, then its workers'
        last messages queued, then the dispatcher."""
        self.work.shutdown(wait=True)
        self.orch.close()
        self.dispatcher.stop()


def build_bot(
    settings: Settings, slack: SlackSettings, engine: Engine, known: Mapping[str, Workflow],
    clock: Now = utcnow,
) -> Bot:  # fmt: skip
    """Every collaborator, in order, each passed to the constructor of what uses it."""
    outbox = Outbox(engine)
    client = web_client(slack.bot_token, slack.api_url)
    front_end = SlackFrontEnd(outbox, slack.channel, clock=clock)
    directory = CombinedDirectory(static_directory(settings), SlackDirectory(client))
    orch = build_orchestrator(settings, engine, known, front_end=front_end,
                              directory=directory, clock=clock)  # fmt: skip
    delivery = SlackDelivery(client, orch.view, lambda iid: interaction(engine, iid))
    acks = _AcksFirst()
    work = _FollowUps(slack.threads, acks)
    app = build_app(Handlers(orch, client, slack), client,
                    signing_secret=slack.signing_secret, work=work)  # fmt: skip
    return Bot(orch, outbox, Dispatcher(outbox, delivery), app, _wsgi(app, orch, acks), work)


@contextmanager
def running_bot(settings: Settings, slack: SlackSettings) -> Iterator[Bot]:
    """Everything `serve` runs, started; stopped in reverse order on exit."""
    known = workflows(settings)
    with database(settings) as engine:
        bot = build_bot(settings, slack, engine, known)
        bot.start()
        _freeze_start_up()
        try:
            yield bot
        finally:
            gc.unfreeze()
            bot.stop()


def _freeze_start_up() -> None:
    """Keep what start-up built (~180k objects: imports, workflows, the app) out of the
    cyclic GC, so a full collection scans only what requests and runs create: with them it
    stopped every thread for ~120 ms, in the middle of a burst of requests."""
    gc.collect()
    gc.freeze()


class _AcksFirst:
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


class _FollowUps(ThreadPoolExecutor):
    """The pool the listeners hand their work to; each task waits for its turn first."""

    def __init__(self, threads: int, acks: _AcksFirst) -> None:
        super().__init__(threads, thread_name_prefix="opsloop-bot")
        self._acks = acks

    def submit(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> Future[T]:
        since = time.monotonic()

        def after_acks() -> T:
            self._acks.wait_turn(since)
            return fn(*args, **kwargs)

        return super().submit(after_acks)


def _wsgi(app: App, orch: Orchestrator, acks: _AcksFirst) -> Wsgi:
    slack = SlackRequestHandler(app, path=EVENTS_PATH)

    def route(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        if environ.get("PATH_INFO") == "/healthz" and environ.get("REQUEST_METHOD") == "GET":
            body = json.dumps({"ok": True, "workflows": len(orch.workflows)}).encode()
            start_response("200 OK", [("Content-Type", "application/json"),
                                      ("Content-Length", str(len(body)))])  # fmt: skip
            return [body]
        with acks.answering():
            return slack(environ, start_response)

    return route


@contextmanager
def http_in_background(
    wsgi: Callable[..., Any], host: str = "127.0.0.1", port: int = 0, threads: int = 16
) -> Iterator[str]:
    """`wsgi` behind waitress on a thread of its own (tests, benchmarks, embedding);
    yields the events URL. Stops cleanly: the server closes its sockets on its own
    thread, so no select() is left waiting on a closed one."""
    from waitress import create_server, wasyncore

    server = create_server(wsgi, host=host, port=port, threads=threads)
    thread = threading.Thread(target=server.run, name="opsloop-http", daemon=True)
    thread.start()
    try:
        yield f"http://{host}:{server.effective_port}{EVENTS_PATH}"
    finally:
        server.trigger.pull_trigger(lambda: wasyncore.close_all(server._map))
        thread.join(10)
        server.task_dispatcher.shutdown()


def serve(settings: Settings, slack: SlackSettings) -> int:
    """Run until interrupted."""
    with running_bot(settings, slack) as bot:
        if slack.app_token:
            _socket_mode(bot.app, slack.app_token)
            return 0
        from waitress import create_server

        server = create_server(bot.wsgi, host=slack.host, port=slack.port, threads=slack.threads)
        print(f"opsloop: listening on http://{slack.host}:{server.effective_port}{EVENTS_PATH}",
              flush=True)  # fmt: skip
        try:
            server.run()
        finally:
            server.close()
    return 0


def _socket_mode(app: App, app_token: str) -> None:
    """Connect out to Slack and serve until interrupted.

    Connects before saying so: a refused app token (apps.connections.open) is a setting
    to fix, reported in one line, not a traceback after "connected". A WebSocket that
    fails to open is retried by the client every ping interval.
    """
    from slack_bolt.adapter.socket_mode import SocketModeHandler
    from slack_sdk.errors import SlackApiError

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
            print("opsloop: connected in Socket Mode", flush=True)
        else:
            print("opsloop: Socket Mode connection failed; retrying", flush=True)
        threading.Event().wait()
    finally:
        handler.close()  # off the socket first: nothing new arrives while the bot stops
