"""`opsloop serve`: the orchestrator, the outbox and the Bolt app in one process.

This module only wires: it builds every collaborator in order, passing each to the
constructor of what uses it, starts the orchestrator last, and hands the app to a
transport: HTTP (bot/slack/http_transport.py) or, with an app-level token, Socket
Mode (bot/slack/socket_mode.py).
"""

from __future__ import annotations

import gc
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass

from slack_bolt import App
from sqlalchemy.engine import Engine

from bot.runtime import build_orchestrator, clock_of, database, static_directory, workflows
from bot.settings import Settings, SlackSettings
from bot.slack.app import build_app
from bot.slack.delivery import SlackDelivery, delivery_client, web_client
from bot.slack.directory import CombinedDirectory, SlackDirectory
from bot.slack.dispatcher import Dispatcher
from bot.slack.frontend import SlackFrontEnd
from bot.slack.handlers import Handlers
from bot.slack.http_transport import AcksFirst, FollowUps, Wsgi, serve_http, wsgi_app
from bot.slack.outbox import Outbox
from bot.slack.pacing import ChannelPacer
from bot.slack.replays import ReplayLedger
from bot.slack.request_guard import RequestGuard
from bot.slack.socket_mode import serve_socket_mode
from orchestrator.clock import Clock
from orchestrator.engine import Orchestrator
from orchestrator.queries import interaction
from orchestrator.workflow.definitions import Workflow


@dataclass
class Bot:
    """Everything `serve` runs, built and wired; `start()` it, then `stop()` it."""

    orch: Orchestrator
    outbox: Outbox
    dispatcher: Dispatcher
    app: App
    wsgi: Wsgi
    work: FollowUps

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
    clock: Clock | None = None,
) -> Bot:  # fmt: skip
    """Every collaborator, in order, each passed to the constructor of what uses it."""
    clock = clock or clock_of(settings)
    outbox = Outbox(engine)
    client = web_client(slack.bot_token, slack.api_url)
    front_end = SlackFrontEnd(outbox, slack.channel, clock=clock.now)
    directory = CombinedDirectory(static_directory(settings), SlackDirectory(client))
    orch = build_orchestrator(
        settings, engine, known, front_end=front_end, directory=directory, clock=clock,
        secrets=(slack.bot_token, slack.signing_secret, slack.app_token),
    )  # fmt: skip
    delivery = SlackDelivery(delivery_client(slack.bot_token, slack.api_url), orch.view,
                             lambda iid: interaction(engine, iid))  # fmt: skip
    dispatcher = Dispatcher(outbox, delivery, pacer=ChannelPacer(slack.posts_per_second))
    acks = AcksFirst()
    work = FollowUps(slack.threads, acks)
    app = build_app(Handlers(orch, client, slack), client,
                    signing_secret=slack.signing_secret, work=work)  # fmt: skip
    replays = ReplayLedger(engine, clock.now)
    secret = slack.signing_secret
    guard = None if secret is None else (lambda bolt: RequestGuard(bolt, secret, replays))
    wsgi = wsgi_app(app, acks, workflows=len(known), guard=guard)
    return Bot(orch, outbox, dispatcher, app, wsgi, work)


@contextmanager
def running_bot(
    settings: Settings, slack: SlackSettings, clock: Clock | None = None
) -> Iterator[Bot]:
    """Everything `serve` runs, started; stopped in reverse order on exit."""
    known = workflows(settings)
    with database(settings) as engine:
        bot = build_bot(settings, slack, engine, known, clock)
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


def serve(settings: Settings, slack: SlackSettings) -> int:
    """Run until interrupted."""
    with running_bot(settings, slack) as bot:
        if slack.app_token:
            serve_socket_mode(bot.app, slack.app_token)
        else:
            serve_http(bot.wsgi, slack.host, slack.port, slack.threads)
    return 0
