"""The pool of step workers: threads taking work from one queue, failures logged.

Not a ThreadPoolExecutor: its Future per task (a Condition and an RLock made, set and
notified) and its idle semaphore cost more than a no-op step's own work, and nothing here
waits on a result (issue 16: one RLock per step in the profile). A worker whose pass
claimed the next step of its run may also keep it, to run it once its task is done, when
no other work waits for a thread: a chain step then costs no hand-off (advancing.py).
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable
from typing import Any

log = logging.getLogger("orchestrator.advancing")  # its messages read as the advancer's

_Task = tuple[Callable[..., None], tuple[Any, ...]]


class StepPool:
    """Runs steps and passes (advancing.py) on at most `max_workers` threads, started as
    work comes. The threads are daemons: `close` waits for them (or drops what is queued),
    and a process that exits without closing does not wait for a step still running."""

    def __init__(self, max_workers: int) -> None:
        if max_workers < 1:
            raise ValueError("max_workers must be at least 1")
        self._max = max_workers
        self._queue: queue.SimpleQueue[_Task | None] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []
        self._waiting = 0  # tasks put and not yet taken by a thread
        self._idle = 0  # threads waiting for a task
        self._local = threading.local()  # .worker: this thread is one of the pool's
        self._closing = False
        self._dropping = False  # closed without waiting: what is queued or kept is dropped

    @property
    def on_worker(self) -> bool:
        """Whether the calling thread is one of the pool's."""
        return getattr(self._local, "worker", False)

    def submit(self, fn: Callable[..., None], *args: Any) -> None:
        """Run `fn(*args)` on the pool; what it raises is logged (the run stays as its last
        commit left it, and the next sweep picks it up). After `close`, dropped."""
        with self._lock:
            if self._closing:
                log.debug("closing: %s%r left to the next sweep", fn.__name__, args[:2])
                return
            self._waiting += 1
            if self._idle < self._waiting and len(self._threads) < self._max:
                thread = threading.Thread(
                    target=self._work, name=f"opsloop-step_{len(self._threads)}", daemon=True
                )
                self._threads.append(thread)
                thread.start()  # under the lock: `close` never joins a thread not started
            self._queue.put((fn, args))

    def keep(self, fn: Callable[..., None], *args: Any) -> bool:
        """On a worker, with nothing queued: run `fn(*args)` on this thread right after its
        task, and True; else False (the caller submits it). A chain's next step then runs
        on the worker whose pass claimed it, without waking another thread for it."""
        if not self.on_worker or self._waiting or getattr(self._local, "kept", None):
            return False
        self._local.kept = (fn, args)
        return True

    def hand_kept(self) -> None:
        """Submit what this thread kept (it has more to do before it would run it)."""
        task = getattr(self._local, "kept", None)
        if task is not None:
            self._local.kept = None
            self.submit(task[0], *task[1])

    def _work(self) -> None:
        self._local.worker = True
        self._local.kept = None
        while True:
            with self._lock:
                self._idle += 1
            task = self._queue.get()
            with self._lock:
                self._idle -= 1
                if task is None:  # close() put one per thread, behind every task
                    return
                self._waiting -= 1
            while task is not None:
                fn, args = task
                try:
                    fn(*args)
                except BaseException:  # SystemExit from a step too: the thread lives on
                    log.exception("%s%r failed on the step pool", fn.__name__, args[:2])
                task, self._local.kept = self._local.kept, None
                if task is not None and self._dropping:
                    log.debug("closing: %s%r left to the next sweep", task[0].__name__,
                              task[1][:2])  # fmt: skip
                    task = None

    def close(self, *, wait: bool) -> None:
        """Take no more work; wait for what is queued and runs, or drop what is queued and
        leave what runs (not `wait`)."""
        with self._lock:
            self._closing = True
            threads = list(self._threads)
            if not wait:  # queued work is dropped: the next sweep does it
                self._dropping = True
                while True:
                    try:
                        task = self._queue.get_nowait()
                    except queue.Empty:
                        break
                    if task is not None:
                        self._waiting -= 1
            for _ in threads:  # behind every task queued: each thread ends after them
                self._queue.put(None)
        if wait:
            for thread in threads:
                if thread is not threading.current_thread():
                    thread.join()
