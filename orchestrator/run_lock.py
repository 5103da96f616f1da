"""The lock one run's scheduling passes hold, weakly kept (advancing.py)."""

from __future__ import annotations

import threading


class RunLock:
    """A lock that can be weakly referenced (threading.Lock cannot)."""

    __slots__ = ("__weakref__", "_lock")

    def __init__(self) -> None:
        self._lock = threading.Lock()

    def __enter__(self) -> bool:
        return self._lock.acquire()

    def __exit__(self, *exc: object) -> None:
        self._lock.release()
