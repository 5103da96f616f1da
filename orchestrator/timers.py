"""Timers on the injected clock, run by APScheduler.

`at(when, ...)` takes a moment on the runtime's clock (orchestrator/clock.py), not the
wall clock. Each job is an APScheduler date job set for the wall-clock instant at which
the runtime's clock will read `when`; for the system clock that is `when` itself. When a
test's clock jumps, every job is set again, so what fell due fires at once. A job that
fires early by the runtime's clock (a clock standing still) is set again, not run.

The database stays the truth for everything these timers do (people.py, schedules):
they only hold jobs derived from it, rebuilt at every start.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from apscheduler.jobstores.base import JobLookupError
from apscheduler.schedulers.background import BackgroundScheduler

from orchestrator.clock import Clock
from storage.types import utcnow


class Timers:
    """Jobs at moments of the runtime's clock, and housekeeping on the wall clock."""

    def __init__(self, clock: Clock) -> None:
        self._clock = clock
        self._scheduler = BackgroundScheduler(
            timezone=UTC,
            job_defaults={"misfire_grace_time": None, "coalesce": True, "max_instances": 1},
        )
        self._lock = threading.Lock()
        # job id -> (when, fn, args): what each clock-timed job is for.
        self._due: dict[str, tuple[datetime, Callable[..., None], tuple[Any, ...]]] = {}
        self._closed = False
        self._on_shutdown: list[Callable[[], None]] = []
        clock.on_jump(self._retime)

    def start(self) -> None:
        self._scheduler.start()

    def on_shutdown(self, callback: Callable[[], None]) -> None:
        """Call `callback` first when the timers shut down (a listener that arms them)."""
        self._on_shutdown.append(callback)

    def shutdown(self) -> None:
        for callback in self._on_shutdown:
            callback()
        with self._lock:
            self._closed = True  # a job firing now arms nothing new
            self._due.clear()
        if self._scheduler.running:
            # First, under the scheduler's lock, so a pass that is running jobs ends before
            # the scheduler stops: stopped mid-pass, APScheduler raises on its own thread.
            self._scheduler.remove_all_jobs()
            # Waits for jobs under way (a sweep, a check of due schedules): they use the
            # database, which the caller may dispose of next.
            self._scheduler.shutdown(wait=True)

    def at(self, when: datetime, job_id: str, fn: Callable[..., None], *args: Any) -> None:
        """Call `fn(*args)` once the clock reads `when` (at once if it already does);
        replaces any job of the same id."""
        with self._lock:
            self._due[job_id] = (when, fn, args)
            self._set(job_id, when)

    def cancel(self, job_id: str) -> None:
        with self._lock:
            self._due.pop(job_id, None)
            if self._closed:  # APScheduler's shutdown holds its job-store lock while it
                return  # waits for running jobs: a job calling in here would deadlock
            with contextlib.suppress(JobLookupError):
                self._scheduler.remove_job(job_id)

    def every(self, seconds: float, job_id: str, fn: Callable[[], None]) -> None:
        """Run `fn` every `seconds` of wall time (heartbeats, sweeps, polls)."""
        self._scheduler.add_job(fn, "interval", seconds=seconds, id=job_id,
                                replace_existing=True)  # fmt: skip

    @property
    def running(self) -> bool:
        return bool(self._scheduler.running) and not self._closed

    def job_ids(self) -> list[str]:
        return [job.id for job in self._scheduler.get_jobs()]

    def _set(self, job_id: str, when: datetime) -> None:
        if self._closed:
            return
        wall = utcnow() + timedelta(seconds=self._clock.seconds_until(when))
        self._scheduler.add_job(self._fire, "date", run_date=wall, args=[job_id], id=job_id,
                                replace_existing=True)  # fmt: skip

    def _fire(self, job_id: str) -> None:
        with self._lock:
            entry = self._due.get(job_id)
            if entry is None:
                return
            when, fn, args = entry
            if when > self._clock.now():  # the clock stood still: not due yet
                self._set(job_id, when)
                return
            del self._due[job_id]
        fn(*args)

    def _retime(self) -> None:
        with self._lock:
            for job_id, (when, _, _) in list(self._due.items()):
                self._set(job_id, when)
