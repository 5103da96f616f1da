"""`opsloop serve`: the orchestrator, the outbox and the Bolt app in one process.

This module only wires: it builds every collaborator in order, passing each to the
constructor of what uses it, starts the orchestrator last, and hands the app to a
transport: HTTP (bot/slack/http_transport.py) or, with an app-level token, Socket
Mode (bot/slack/socket_mode.py).
"""

from __future__ import annotations

import gc
import logging
from collections.abc import Iterator, Mapping
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass

from slack_bolt import App
from sqlalchemy.engine import Engine

from bot.metrics import CONTENT_TYPE, DatabaseCollector, Metrics, ObservedFrontEnd
from bot.runtime import (
    build_orchestrator,
    clock_of,
    database,
    drain_then_close,
    exit_if_steps_left,
    static_directory,
    workflows,
)
from bot.settings import Settings, SlackSettings
from bot.slack.app import build_app
from bot.slack.delivery import SlackDelivery, delivery_client, web_client
from bot.slack.directory import CombinedDirectory, SlackDirectory
from bot.slack.dispatcher import Dispatcher
from bot.slack.events import listen_for_group_changes
from bot.slack.frontend import SlackFrontEnd
from bot.slack.handlers import Handlers
from bot.slack.http_transport import AcksFirst, FollowUps, Wsgi, serve_http, wsgi_app
from bot.slack.inbox import Inbox
from bot.slack.intake import Intake
from bot.slack.outbox import Outbox
from bot.slack.outbox_failures import FailedCollector
from bot.slack.pacing import ChannelPacer
from bot.slack.readiness import Readiness, listen
from bot.slack.reconciler import Reconciler
from bot.slack.request_guard import RequestGuard
from bot.slack.shutdown import Shutdown, stop_signals
from bot.slack.socket_mode import serve_socket_mode
from bot.tracing import traced
from orchestrator.clock import Clock
from orchestrator.engine import Orchestrator
from orchestrator.group_changes import change_count
from orchestrator.queries import interaction
from orchestrator.workflow.definitions import Workflow

log = logging.getLogger(__name__)
FLUSH_S = 5.0  # at a stop, how long the outbox may keep sending what is due


@dataclass
class Bot:
    """Everything `serve` runs, built and wired; `start()` it, then `stop()` it."""

    orch: Orchestrator
    outbox: Outbox
    dispatcher: Dispatcher
    app: App
    wsgi: Wsgi
    work: FollowUps
    intake: Intake
    readiness: Readiness
    metrics: Metrics
    reconciler: Reconciler  # what other processes changed, brought to Slack

    def start(self) -> None:
        """The dispatcher first, the orchestrator last: what recovery reports at start-up
        (a question about a step cut off by a crash) goes to Slack like anything else."""
        self.dispatcher.start()
        self.orch.start(recover=True, serving=True)
        self.reconciler.start()
        self.intake.start()  # requests acked before a crash: done now, by this replica

    def stop(self, grace: float = 30.0) -> None:
        """In reverse: no follow-up work left to reach the orchestrator; running steps
        given `grace` s to end (then killed, their leases released); the orchestrator
        closed; then what the outbox can send, sent."""
        self.intake.stop()
        self.work.shutdown(wait=True)
        drain_then_close(self.orch, grace)
        self.reconciler.stop()
        self.dispatcher.flush(FLUSH_S)
        self.dispatcher.stop()


def build_bot(
    settings: Settings, slack: SlackSettings, engine: Engine, known: Mapping[str, Workflow],
    clock: Clock | None = None,
) -> Bot:  # fmt: skip
    """Every collaborator, in order, each passed to the constructor of what uses it."""
    clock = clock or clock_of(settings)
    outbox = Outbox(engine)
    metrics = Metrics()
    client = web_client(slack.bot_token, slack.api_url, metrics)
    slack_front = SlackFrontEnd(outbox, slack.channel, clock=clock.now)
    front_end = ObservedFrontEnd(slack_front, metrics, clock.now, known)
    front_end = traced(front_end, clock.now, known)  # only with OTEL_EXPORTER_OTLP_ENDPOINT
    groups = SlackDirectory(client, now=lambda: clock.now().timestamp(),
                            changes=lambda group: change_count(engine, group))  # fmt: skip
    directory = CombinedDirectory(static_directory(settings), groups)
    orch = build_orchestrator(
        settings, engine, known, front_end=front_end, directory=directory, clock=clock,
        secrets=(slack.bot_token, slack.signing_secret, slack.app_token),
    )  # fmt: skip
    delivery = SlackDelivery(delivery_client(slack.bot_token, slack.api_url, metrics), orch.view,
                             lambda iid: interaction(engine, iid))  # fmt: skip
    dispatcher = Dispatcher(outbox, delivery, pacer=ChannelPacer(slack.posts_per_second))
    acks = AcksFirst()
    work = FollowUps(slack.threads, acks)
    handlers = Handlers(orch, client, slack)
    inbox = Inbox(engine, clock.now, orch.replica)
    intake = Intake(inbox, handlers, work)
    app = build_app(handlers, client, signing_secret=slack.signing_secret, work=work,
                    intake=intake)  # fmt: skip
    listen_for_group_changes(app, directory.forget, work, engine, clock)
    secret = slack.signing_secret  # the guard stores requests in the inbox, replay check too
    guard = None if secret is None else (lambda bolt: RequestGuard(bolt, secret, inbox))
    readiness = Readiness(engine, client, orch.liveness)
    metrics.registry.register(DatabaseCollector(engine, clock.now, outbox.backlog))
    metrics.registry.register(FailedCollector(outbox))
    wsgi = wsgi_app(app, acks, workflows=len(known), guard=guard, endpoints={
        "/readyz": readiness.endpoint,
        "/metrics": lambda: (200, CONTENT_TYPE, metrics.exposition()),
    })  # fmt: skip
    return Bot(orch, outbox, dispatcher, app, wsgi, work, intake, readiness, metrics,
               Reconciler(engine, slack_front, changes=orch.changes))  # fmt: skip


@contextmanager
def running_bot(
    settings: Settings, slack: SlackSettings, clock: Clock | None = None
) -> Iterator[Bot]:
    """Everything `serve` runs, started once Slack accepted the bot token; stopped in
    reverse order on exit, running steps given `settings.shutdown_grace` s to end."""
    known = workflows(settings)
    with database(settings, migrate=True) as engine:
        bot = build_bot(settings, slack, engine, known, clock)
        with ExitStack() as stack:
            try:
                bot.readiness.check_token()
                stack.enter_context(bot.metrics.served(slack.host, settings.metrics_port))
            except BaseException:
                bot.work.shutdown(wait=False)
                bot.orch.close()
                raise
            bot.start()
            _freeze_start_up()
            try:
                yield bot
            finally:
                gc.unfreeze()
                bot.stop(settings.shutdown_grace)


def _freeze_start_up() -> None:
    """Keep what start-up built (~180k objects: imports, workflows, the app) out of the
    cyclic GC, so a full collection scans only what requests and runs create: with them it
    stopped every thread for ~120 ms, in the middle of a burst of requests."""
    gc.collect()
    gc.freeze()


def serve(settings: Settings, slack: SlackSettings) -> int:
    """Run until SIGTERM or Ctrl-C, then stop gracefully (bot/slack/shutdown.py); 0."""
    listener = None if slack.app_token else listen(slack.host, slack.port)
    bot: Bot | None = None
    try:
        with stop_signals() as stopper, running_bot(settings, slack) as bot:
            log.info("opsloop serve started: %d workflow(s), replica %s",
                     len(bot.orch.workflows), bot.orch.replica)  # fmt: skip
            if listener is None:
                serve_socket_mode(bot.app, slack.app_token or "")
            else:
                serve_http(bot.wsgi, listener, slack.threads, stopper)
    except Shutdown as why:
        log.info("opsloop serve stopped on %s", why)
    finally:
        if listener is not None:
            listener.close()
    if bot is not None:
        exit_if_steps_left(bot.orch)
    return 0
