"""The lock one run's scheduling passes hold, weakly kept (advancing.py)."""

from __future__ import annotations

import threading
import weakref


class RunLock:
    """A lock that can be weakly referenced (threading.Lock cannot)."""

    __slots__ = ("__weakref__", "_lock")

    def __init__(self) -> None:
        self._lock = threading.Lock()

    def __enter__(self) -> bool:
        return self._lock.acquire()

    def __exit__(self, *exc: object) -> None:
        self._lock.release()

    def acquire(self, blocking: bool = True) -> bool:
        """Take the lock (`blocking` False: only if it is free); True if taken."""
        return self._lock.acquire(blocking)

    def release(self) -> None:
        self._lock.release()


class RunLocks:
    """`locks(run_id)`: the lock a pass over `run_id` holds; held to change a step a pass
    may also read. Weakly held: a lock nobody holds or waits for is dropped, so a
    long-lived process does not keep one per run it ever saw."""

    def __init__(self) -> None:
        self._guard = threading.Lock()
        self._locks: weakref.WeakValueDictionary[str, RunLock] = weakref.WeakValueDictionary()

    def __call__(self, run_id: str) -> RunLock:
        with self._guard:
            lock = self._locks.get(run_id)
            if lock is None:
                lock = self._locks[run_id] = RunLock()
            return lock
