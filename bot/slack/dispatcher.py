"""Sends due outbox rows to Slack: fair across channels, and nothing sleeps.

One thread picks rows and hands them to a small pool of senders. A channel has
at most one message in flight (so its messages keep their order); a channel
that used up its posting allowance, or that Slack told to wait (429), keeps its
rows in the outbox while other channels' rows go. Sending never sleeps: a row
that must wait goes back to the outbox with a not-before time.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor, wait
from typing import Any

from bot.slack.outbox import Message, Outbox
from bot.slack.outbox_claims import worker_id
from bot.slack.outbox_failures import permanent
from bot.slack.pacing import ChannelPacer, Deferred, is_edit

log = logging.getLogger(__name__)

Send = Callable[[Message], Mapping[str, Any] | None]


class Dispatcher:
    """Sends due outbox rows with `send`, which raises to have a row retried later and
    raises `Deferred` to have it wait without counting a failure."""

    def __init__(
        self, outbox: Outbox, send: Send, *, pacer: ChannelPacer | None = None,
        senders: int = 4, poll_s: float = 0.5,
    ) -> None:  # fmt: skip
        self.outbox, self.send = outbox, send
        self.pacer = pacer or ChannelPacer()
        self.poll_s = poll_s
        self.worker = worker_id()  # names this process: a restart frees its claims at once
        self._pool = ThreadPoolExecutor(senders, thread_name_prefix="opsloop-send")
        self._busy: set[str] = set()  # channels with a message in flight
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="opsloop-outbox", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def flush(self, timeout: float) -> bool:
        """Before stopping: let the dispatcher send what is due, for up to `timeout` s.
        True if nothing due was left (a message waiting out a rate limit stays queued)."""
        deadline = time.monotonic() + timeout
        while self.outbox.due(limit=1):
            if time.monotonic() >= deadline or not self._thread.is_alive():
                return False
            self.outbox.wakeup.set()
            self._stop.wait(0.05)
        return True

    def stop(self, timeout: float = 10.0) -> None:
        """Stop picking rows and let the sends in flight finish."""
        self._stop.set()
        self.outbox.wakeup.set()
        if self._thread.is_alive():
            self._thread.join(timeout)
        self._pool.shutdown(wait=True)

    def _loop(self) -> None:
        while not self._stop.is_set():
            self.outbox.wakeup.clear()
            try:
                self.dispatch()
            except Exception:  # the database is away: keep the thread, try again soon
                log.exception("outbox: could not read due messages")
                self._stop.wait(5.0)
                continue
            pause = self.pacer.next_change()
            self.outbox.wakeup.wait(self.poll_s if pause is None else min(pause, self.poll_s))

    def drain(self) -> bool:
        """Send what may go now and wait for it; True if anything was sent."""
        started = self.dispatch()
        wait(started)
        return bool(started)

    def dispatch(self) -> list[Future[None]]:
        """Hand every row that may go now to a sender, at most one per channel."""
        started: list[Future[None]] = []
        taken: set[str] = set()  # channels looked at in this pass
        while not self._stop.is_set():
            must_wait, held = self.pacer.waiting()
            with self._lock:
                skip = taken | held | self._busy
            batch = self.outbox.due(skip=skip, skip_posts=must_wait)
            if not batch:
                break
            for message in batch:
                channel = message.channel or ""
                if channel in taken:
                    continue
                taken.add(channel)
                if future := self._start(message, channel):
                    started.append(future)
        return started

    def _start(self, message: Message, channel: str) -> Future[None] | None:
        claimed = self.outbox.claim(message, self.worker)
        if claimed is None:
            return None  # another replica took it
        if not is_edit(claimed.kind):
            self.pacer.take(channel)
        with self._lock:
            self._busy.add(channel)
        return self._pool.submit(self._deliver, claimed, channel)

    def _deliver(self, message: Message, channel: str) -> None:
        try:
            self._send(message, channel)
        except Exception:  # the database is away: the row's lease runs out and it goes again
            log.exception("outbox: could not record how sending %s went", message.id)
        finally:
            with self._lock:
                self._busy.discard(channel)
            self.outbox.wakeup.set()

    def _send(self, message: Message, channel: str) -> None:
        try:
            result = self.send(message)
        except Deferred as later:
            self.pacer.hold(channel, later.seconds)
            self.outbox.defer(message, later.seconds, str(later))
        except Exception as exc:
            if permanent(exc):  # channel_not_found and the like: reported, not retried
                log.error("outbox: Slack refused %s for good: %s", message.id, exc)
                self.outbox.give_up(message, f"{type(exc).__name__}: {exc}")
                return
            delay = min(2 ** min(message.attempts, 6), 60)
            log.warning("outbox: %s failed (%s); retry in %s s", message.id, exc, delay)
            self.outbox.failed(message, f"{type(exc).__name__}: {exc}", delay)
        else:
            self.outbox.sent(message, result)
