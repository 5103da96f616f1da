"""SIGTERM (every deploy) and the first Ctrl-C stop `serve` gracefully.

A transport that registered how to stop itself (`Stopper.on_stop`: the HTTP server) is
asked to, from a thread of its own; otherwise the signal raises `Shutdown` in the main
thread. Raising inside waitress's loop could leave one of its locks held, and closing the
server then hung (seen as a flaky SIGTERM test). Either way the transport unwinds (no new
commands or clicks are taken: Slack gets a fast error or another replica answers), then
the bot's `stop()` gives running steps OPSLOOP_SHUTDOWN_GRACE seconds. A second SIGTERM
changes nothing (SIGKILL ends it); a second Ctrl-C stops at once.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import FrameType

SIGNALS = (signal.SIGTERM, signal.SIGINT)


class Shutdown(BaseException):  # like KeyboardInterrupt: no `except Exception` swallows it
    """A stop signal arrived; its name is the message."""


class Stopper:
    """How a stop signal reaches a transport that can stop itself cleanly."""

    def __init__(self) -> None:
        self.signal: str | None = None  # the signal that asked, once one did
        self._asked = threading.Event()
        self._callback: Callable[[], None] | None = None

    def on_stop(self, callback: Callable[[], None]) -> None:
        """Call `callback` (on a thread of its own) when a stop signal arrives."""
        self._callback = callback
        threading.Thread(target=self._watch, name="opsloop-stop", daemon=True).start()

    def request(self, name: str) -> bool:
        """From the signal handler: True if a transport will stop itself."""
        if self._callback is None:
            return False
        self.signal = name
        self._asked.set()  # only this handler ever touches the event's lock
        return True

    def _watch(self) -> None:
        self._asked.wait()
        if self._callback is not None:
            self._callback()


@contextmanager
def stop_signals() -> Iterator[Stopper]:
    """SIGTERM and SIGINT stop the transport once (see the module doc); restored on exit."""
    stopper = Stopper()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        name = signal.Signals(signum).name
        if not stopper.request(name):
            raise Shutdown(name)

    previous = {sig: signal.signal(sig, on_signal) for sig in SIGNALS}
    try:
        yield stopper
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
