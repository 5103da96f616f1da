"""`opsloop serve --no-slack`: the engine alone, for CLI-only users and headless workers.

It does everything `serve` does but talk to Slack: takes over unfinished runs, fires
schedules, applies deadlines, reminders and escalations, takes over a dead replica's
steps; and it prints what happens, one line per event. Without some such process,
deadlines only fire while an opsloop command happens to run.
"""

from __future__ import annotations

import signal
import sys
import threading
from contextlib import ExitStack
from types import FrameType

from bot import console
from bot.metrics import DatabaseCollector, Metrics, ObservedFrontEnd
from bot.runtime import (
    build_orchestrator,
    clock_of,
    database,
    drain_then_close,
    exit_if_steps_left,
    workflows,
)
from bot.settings import Settings, SettingsError
from bot.slack.outbox import Outbox
from bot.tracing import traced


def serve_headless(settings: Settings) -> int:
    """Run until SIGTERM (exit 0) or Ctrl-C (KeyboardInterrupt, exit 130)."""
    known = workflows(settings)
    stop = threading.Event()

    def on_term(signum: int, frame: FrameType | None) -> None:
        stop.set()

    previous = signal.signal(signal.SIGTERM, on_term)
    try:
        with database(settings, migrate=True) as engine, ExitStack() as stack:
            clock, metrics = clock_of(settings), Metrics()
            front_end = ObservedFrontEnd(console.ConsoleFrontEnd(sys.stdout), metrics,
                                         clock.now, known)  # fmt: skip
            front_end = traced(front_end, clock.now, known)
            orch = build_orchestrator(settings, engine, known, front_end=front_end, clock=clock)
            metrics.registry.register(DatabaseCollector(engine, clock.now, Outbox(engine).backlog))
            try:  # no Slack port: metrics only on OPSLOOP_METRICS_PORT, if set
                stack.enter_context(metrics.served("0.0.0.0", settings.metrics_port))
            except SettingsError:
                orch.close()
                raise
            orch.start(recover=True, serving=True)
            try:
                print(f"opsloop: serving {len(known)} workflows without Slack", flush=True)
                while not stop.wait(1.0):  # a timeout, so Ctrl-C is seen on the main thread
                    pass
                print("opsloop: stopping: no new steps; running steps get up to "
                      f"{settings.shutdown_grace:g} s", flush=True)  # fmt: skip
            finally:  # SIGTERM or Ctrl-C: the same graceful stop
                drain_then_close(orch, settings.shutdown_grace)
    finally:
        signal.signal(signal.SIGTERM, previous)
    print("opsloop: stopped", flush=True)
    exit_if_steps_left(orch)
    return 0
