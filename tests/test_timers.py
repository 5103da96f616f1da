"""Timers run on the injected clock: tests move time, and nothing waits it out."""

from __future__ import annotations

import threading
from datetime import timedelta

import sqlalchemy as sa
from apscheduler.schedulers.base import STATE_STOPPED

from orchestrator.clock import FakeClock, SystemClock
from orchestrator.timers import Timers
from storage.engine import create_engine
from tests.orchestrators import Nudges, running
from tests.polling import until


def started(clock: FakeClock | SystemClock) -> Timers:
    timers = Timers(clock)
    timers.start()
    return timers


def test_a_job_fires_when_the_clock_reaches_its_moment_and_not_before() -> None:
    clock, fired = FakeClock(), threading.Event()
    timers = started(clock)
    try:
        timers.at(clock.now() + timedelta(hours=1), "job", fired.set)
        clock.advance(timedelta(minutes=59, seconds=59))
        assert not fired.wait(0.2)  # a real moment passes; the clock stands still
        clock.advance(1)
        until(fired.is_set, what="the job at the clock's new present")
    finally:
        timers.shutdown()


def test_a_cancelled_or_replaced_job_does_not_fire() -> None:
    clock, calls = FakeClock(), []
    timers = started(clock)
    try:
        timers.at(clock.now() + timedelta(seconds=5), "a", calls.append, "cancelled")
        timers.cancel("a")
        timers.at(clock.now() + timedelta(seconds=5), "b", calls.append, "replaced")
        timers.at(clock.now() + timedelta(seconds=7), "b", calls.append, "b")
        clock.advance(6)
        timers.at(clock.now(), "marker", calls.append, "marker")  # due now: fires at once
        until(lambda: "marker" in calls)
        clock.advance(1)
        until(lambda: "b" in calls)
        assert calls == ["marker", "b"]
    finally:
        timers.shutdown()


def test_on_the_system_clock_a_job_fires_at_its_wall_time() -> None:
    clock, fired = SystemClock(), threading.Event()
    timers = started(clock)
    try:
        timers.at(clock.now() + timedelta(milliseconds=50), "soon", fired.set)
        until(fired.is_set, timeout=30, what="a job 50 ms away")
    finally:
        timers.shutdown()


REMINDED = """
name: reminded
steps:
  - id: gate
    approval:
      message: "ok?"
      remind_every: 10m
      escalate: {after: 30m, users: [U0BOSS]}
"""


def test_reminders_and_escalation_follow_the_clock_once_however_far_it_jumps(
    engine: sa.Engine,
) -> None:
    clock, told = FakeClock(), Nudges()
    with running(engine, REMINDED, clock=clock, front_end=told) as orch:
        run_id = orch.start_run("reminded", {}, started_by="U0RUN")
        assert orch.wait(run_id, timeout=30).status == "waiting"
        clock.advance(timedelta(minutes=9))
        assert told.reminders == []
        clock.advance(timedelta(minutes=1))
        until(lambda: len(told.reminders) == 1, what="the first reminder")
        clock.advance(timedelta(hours=5))  # thirty periods at once: one reminder, no burst
        until(lambda: len(told.escalations) == 1, what="the escalation")
        until(lambda: len(told.reminders) == 2, what="the reminder after the jump")
        clock.advance(timedelta(minutes=9))
        orch.view(run_id)  # a round trip: time for a wrongly armed job to fire
        assert (len(told.reminders), len(told.escalations)) == (2, 1)
        clock.advance(timedelta(minutes=1))
        until(lambda: len(told.reminders) == 3, what="the next period's reminder")


def test_a_sweep_or_a_second_replica_sends_no_extra_reminder(
    engine: sa.Engine, db_url: str
) -> None:
    """Seen by a review: each sweep re-armed the reminder at its first, long-past time, so
    every sweep (30 s) sent one, and every replica sent its own."""
    clock, told, other = FakeClock(), Nudges(), Nudges()
    with running(engine, REMINDED, clock=clock, front_end=told, recover=True) as orch:
        run_id = orch.start_run("reminded", {}, started_by="U0RUN")
        assert orch.wait(run_id, timeout=30).status == "waiting"
        with running(create_engine(db_url), REMINDED, clock=clock, front_end=other,
                     recover=True) as replica:  # fmt: skip
            clock.advance(timedelta(minutes=10))
            until(lambda: len(told.reminders) + len(other.reminders) == 1, what="a reminder")
            for _ in range(3):
                orch.sweep()
                replica.sweep()
            orch.view(run_id)  # a round trip: time for a wrongly armed job to fire
            assert len(told.reminders) + len(other.reminders) == 1
            clock.advance(timedelta(minutes=10))
            until(lambda: len(told.reminders) + len(other.reminders) == 2, what="the next one")
            orch.view(run_id)
            assert len(told.reminders) + len(other.reminders) == 2


def test_a_job_that_cancels_a_timer_while_the_timers_shut_down_does_not_hang_them() -> None:
    """Seen as a test hanging in close(): APScheduler's shutdown holds its job-store lock
    while it waits for running jobs, and the job (a schedule check) cancelled a timer."""
    clock, entered, release = FakeClock(), threading.Event(), threading.Event()
    timers = started(clock)

    def job() -> None:
        entered.set()
        release.wait(10)
        timers.cancel("another")

    timers.at(clock.now(), "job", job)
    until(entered.is_set, what="the job to run")
    stopper = threading.Thread(target=timers.shutdown)
    stopper.start()
    # APScheduler marks itself stopped, then takes its lock and waits for the job.
    until(lambda: timers._scheduler.state == STATE_STOPPED, what="the shutdown to begin")
    release.set()
    stopper.join(30)
    assert not stopper.is_alive(), "shutdown hung on the job"
