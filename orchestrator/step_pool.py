"""The pool of step workers: a thread pool whose failures are logged, not lost in futures."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

log = logging.getLogger("orchestrator.advancing")  # its messages read as the advancer's


class StepPool:
    """Runs steps and passes (advancing.py) on `max_workers` threads."""

    def __init__(self, max_workers: int) -> None:
        self._pool = ThreadPoolExecutor(max_workers, thread_name_prefix="opsloop-step")
        self._local = threading.local()  # .worker: this thread is one of the pool's
        self._closing = False

    @property
    def on_worker(self) -> bool:
        """Whether the calling thread is one of the pool's."""
        return getattr(self._local, "worker", False)

    def submit(self, fn: Callable[..., None], *args: Any) -> None:
        """Run `fn(*args)` on the pool; what it raises is logged, not lost in a future (the
        run stays as its last commit left it, and the next sweep picks it up)."""

        def logged() -> None:
            self._local.worker = True
            try:
                fn(*args)
            except Exception:
                log.exception("%s%r failed on the step pool", fn.__name__, args[:2])

        try:
            self._pool.submit(logged)
        except RuntimeError:  # the pool is shut down
            if not self._closing:
                raise
            log.debug("closing: %s%r left to the next sweep", fn.__name__, args[:2])

    def close(self, *, wait: bool) -> None:
        """Take no more work; wait for what runs, or drop what is queued (not `wait`)."""
        self._closing = True
        self._pool.shutdown(wait=wait, cancel_futures=not wait)
