"""From the inbox to the handlers: acked requests are done once, whoever is left to do them.

A listener calls `accept` before it acks (the request is then in the database: in HTTP
mode the request guard already stored it, and `accept` only names it) and `submit`
after; the work runs on the bot's follow-up pool and marks the row done. At
start-up and every `sweep_s` seconds, `recover` takes the rows a dead process left
(bot/slack/inbox.py) and does them the same way. Doing one twice is harmless: a run is
started under an id derived from the request, and an answer is recorded once per person.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from concurrent.futures import Executor
from typing import Any

from slack_bolt.context.respond import Respond

from bot.slack import commands as cmds
from bot.slack.handlers import Handlers
from bot.slack.inbox import CLICK, COMMAND, VIEW, Inbox, Request

log = logging.getLogger(__name__)
SWEEP_S = 5.0  # how often a replica looks for requests a dead one left


def responder(body: Mapping[str, Any]) -> Callable[..., Any]:
    """Replies through the request's response_url (valid 30 min), as Bolt's `respond`."""
    url = body.get("response_url")
    if url:
        return Respond(response_url=url)
    return lambda **reply: log.info("no response_url for a reply: %s", reply.get("text"))


class Intake:
    """Stores requests before the ack, and does each stored one once."""

    def __init__(
        self, inbox: Inbox, handlers: Handlers, work: Executor, *, sweep_s: float = SWEEP_S
    ) -> None:
        self.inbox, self._handlers, self._work, self._sweep_s = inbox, handlers, work, sweep_s
        self._mine: set[str] = set()  # ids submitted here and not finished: not re-taken
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="opsloop-inbox", daemon=True)

    def accept(
        self, kind: str, body: Mapping[str, Any], stored: str | None = None
    ) -> Request | None:
        """Store the request (call before the ack), unless the guard `stored` it under that
        id already; None if it was stored before (a redelivery: ack it, do nothing)."""
        if stored is not None:
            self.inbox.name(stored)
            return Request(stored, kind, body)
        return self.inbox.accept(kind, body)

    def drop(self, stored: str | None) -> None:
        """A stored request that asks for nothing more (help, a form with errors): done."""
        if stored is not None:
            self._work.submit(self._finish, stored)

    def submit(self, request: Request) -> None:
        """Do `request` on the follow-up pool (call after the ack)."""
        with self._lock:
            if request.id in self._mine:
                return
            self._mine.add(request.id)
        self._work.submit(self.process, request)

    def process(self, request: Request) -> None:
        """Do what the request asks, then mark it done."""
        try:
            self._apply(request)
        except Exception:  # the handlers report their own failures; this is a bug
            log.exception("slack request %s (%s) failed", request.id, request.kind)
        try:
            self._finish(request.id)
        finally:
            with self._lock:
                self._mine.discard(request.id)

    def _finish(self, key: str) -> None:
        try:
            self.inbox.finish(key)
        except Exception:  # the database is away: the lease runs out and it is done again
            log.exception("could not mark slack request %s done", key)

    def _apply(self, request: Request) -> None:
        body, handlers = request.body, self._handlers
        if request.recovered:
            log.info("doing slack request %s (%s) that a stopped process acked",
                     request.id, request.kind)  # fmt: skip
        if request.kind == COMMAND:
            handlers.command(cmds.parse_command(body.get("text", "")), body, responder(body))
        elif request.kind == CLICK:
            handlers.action(body, responder(body))
        elif request.kind == VIEW:
            handlers.submission(body)
        else:
            log.warning("slack request %s has an unknown kind %r", request.id, request.kind)

    def recover(self) -> int:
        """Take over what dead processes (or lapsed leases) left; how many were taken."""
        with self._lock:
            mine = set(self._mine)
        taken = [r for r in self.inbox.orphans() if r.id not in mine]
        for request in taken:
            self.submit(request)
        return len(taken)

    def start(self) -> None:
        """Recover now, then sweep every `sweep_s` s."""
        self._recover_logged()
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(10)

    def _loop(self) -> None:
        while not self._stop.wait(self._sweep_s):
            self._recover_logged()

    def _recover_logged(self) -> None:
        try:
            taken = self.recover()
        except Exception:  # the database is away: try again at the next sweep
            log.exception("inbox: could not look for requests left by stopped processes")
            return
        if taken:
            log.info("took over %d slack request(s) acked by a stopped process", taken)
