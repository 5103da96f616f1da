"""The one clock the runtime reads: deadlines, reminders, escalations, leases, schedules.

Logic never calls `datetime.now()`; it asks the clock it was given. `SystemClock` is the
wall clock. `FakeClock` is moved by tests (`advance`, `set`), and whoever keeps timers
(orchestrator/timers.py) subscribes with `on_jump` so that timers falling due in the new
present fire at once: a test moves time instead of waiting it out.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Protocol

from storage.types import utcnow


class Clock(Protocol):
    """What the runtime needs from time."""

    def now(self) -> datetime:
        """The present, aware UTC."""
        ...

    def on_jump(self, callback: Callable[[], None]) -> None:
        """Call `callback` whenever time moves other than by itself (a test's `advance`)."""
        ...

    def seconds_until(self, moment: datetime) -> float:
        """Real seconds until the clock reads `moment` if nothing jumps (0 if it does now)."""
        ...


class SystemClock:
    """The wall clock; it never jumps."""

    def now(self) -> datetime:
        return utcnow()

    def on_jump(self, callback: Callable[[], None]) -> None:
        pass

    def seconds_until(self, moment: datetime) -> float:
        return max(0.0, (moment - self.now()).total_seconds())


class SpeedClock:
    """Wall time run `speed` times as fast (OPSLOOP_CLOCK_SPEED), for tests and demos of
    real processes, where a minute of cron may pass in a second. It reads
    ANCHOR + (wall - ANCHOR) x speed, so every process with the same speed agrees."""

    ANCHOR = datetime(2026, 1, 1, tzinfo=UTC)

    def __init__(self, speed: float) -> None:
        if not speed > 0:
            raise ValueError(f"a clock speed must be above 0, not {speed}")
        self.speed = speed

    def now(self) -> datetime:
        return self.ANCHOR + (utcnow() - self.ANCHOR) * self.speed

    def on_jump(self, callback: Callable[[], None]) -> None:
        pass

    def seconds_until(self, moment: datetime) -> float:
        return max(0.0, (moment - self.now()).total_seconds() / self.speed)


class FakeClock:
    """A clock that stands still until a test moves it. Thread-safe."""

    def __init__(self, start: datetime | None = None) -> None:
        start = start or datetime(2030, 1, 7, 9, 0, tzinfo=UTC)
        if start.tzinfo is None:
            raise ValueError("FakeClock needs an aware start time")
        self._now = start.astimezone(UTC)
        self._lock = threading.Lock()
        self._callbacks: list[Callable[[], None]] = []

    def now(self) -> datetime:
        with self._lock:
            return self._now

    def on_jump(self, callback: Callable[[], None]) -> None:
        with self._lock:
            self._callbacks.append(callback)

    def seconds_until(self, moment: datetime) -> float:
        """As if time ran at wall speed: a timer set by it is set again at every jump."""
        return max(0.0, (moment - self.now()).total_seconds())

    def advance(self, by: float | timedelta) -> datetime:
        """Move time forward by `by` (seconds or a timedelta); returns the new present."""
        step = by if isinstance(by, timedelta) else timedelta(seconds=by)
        if step < timedelta(0):
            raise ValueError("time only moves forward")
        with self._lock:
            self._now += step
        return self._jumped()

    def set(self, moment: datetime) -> datetime:
        """Move time forward to `moment`."""
        return self.advance(moment.astimezone(UTC) - self.now())

    def _jumped(self) -> datetime:
        with self._lock:
            callbacks, now = list(self._callbacks), self._now
        for callback in callbacks:
            callback()
        return now
