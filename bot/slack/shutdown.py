"""SIGTERM (every deploy) and the first Ctrl-C stop `serve` gracefully.

The signal raises `Shutdown` in the main thread, which unwinds the transport (no new
commands or clicks are taken: Slack gets a fast error or another replica answers) and
then the bot's `stop()`, which gives running steps OPSLOOP_SHUTDOWN_GRACE seconds. A
second SIGTERM changes nothing (SIGKILL ends it); a second Ctrl-C stops at once.
"""

from __future__ import annotations

import signal
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType

SIGNALS = (signal.SIGTERM, signal.SIGINT)


class Shutdown(BaseException):  # like KeyboardInterrupt: no `except Exception` swallows it
    """A stop signal arrived; its name is the message."""


@contextmanager
def stop_signals() -> Iterator[None]:
    """SIGTERM and SIGINT raise Shutdown once; restored on exit."""

    def on_signal(signum: int, frame: FrameType | None) -> None:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        raise Shutdown(signal.Signals(signum).name)

    previous = {sig: signal.signal(sig, on_signal) for sig in SIGNALS}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
