"""Schedules inside a running orchestrator: the clock fires them, runs go to the end,
and a schedule that keeps failing pauses itself and says so."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import sqlalchemy as sa

from orchestrator.clock import FakeClock
from orchestrator.protocol import RunView, SilentFrontEnd
from orchestrator.schedules import list_schedules
from tests.orchestrators import running
from tests.polling import until

EVERY_FIVE = """
name: tick
schedules:
  - cron: "*/5 * * * *"
    channel: C0OPS
steps:
  - id: work
    shell: ["true"]
"""
FAILING = """
name: broken_nightly
schedules:
  - id: nightly
    cron: "0 3 * * *"
    timezone: Europe/Berlin
    pause_after_failures: 2
steps:
  - id: work
    shell: ["false"]
"""


class Told(SilentFrontEnd):
    def __init__(self) -> None:
        self.started: list[RunView] = []
        self.paused: list[tuple[str, str | None, str]] = []

    def run_started(self, run: RunView) -> None:
        self.started.append(run)

    def schedule_paused(self, schedule_id: str, channel: str | None, reason: str) -> None:
        self.paused.append((schedule_id, channel, reason))


def scheduled_runs(engine: sa.Engine) -> list[tuple[str, str, str]]:
    with engine.connect() as conn:
        rows = conn.execute(sa.text(
            "SELECT started_by, status, channel FROM workflow_run ORDER BY created_at"
        ))  # fmt: skip
        return [tuple(r) for r in rows]


def test_the_clock_fires_a_schedule_once_per_due_time(engine: sa.Engine) -> None:
    clock, told = FakeClock(datetime(2030, 1, 7, 9, 1, tzinfo=UTC)), Told()
    with running(engine, EVERY_FIVE, clock=clock, front_end=told, recover=True) as orch:
        (schedule,) = list_schedules(engine)
        assert schedule.next_fire_at == datetime(2030, 1, 7, 9, 5, tzinfo=UTC)
        assert scheduled_runs(engine) == []
        clock.advance(timedelta(minutes=3, seconds=59))
        orch.sweep()  # a check before the due time starts nothing
        assert scheduled_runs(engine) == []
        clock.advance(1)
        until(lambda: len(scheduled_runs(engine)) == 1, what="the 09:05 fire")
        until(lambda: scheduled_runs(engine)[0][1] == "succeeded", what="the run to finish")
        assert scheduled_runs(engine) == [(f"schedule:{schedule.id}", "succeeded", "C0OPS")]
        assert told.started[0].started_by == f"schedule:{schedule.id}"
        orch.sweep()  # checking again does not fire the same due time again
        clock.advance(timedelta(minutes=5))
        until(lambda: len(scheduled_runs(engine)) == 2, what="the 09:10 fire")
        (schedule,) = list_schedules(engine)
        assert schedule.next_fire_at == datetime(2030, 1, 7, 9, 15, tzinfo=UTC)


def test_a_schedule_that_keeps_failing_pauses_and_says_so(engine: sa.Engine) -> None:
    clock, told = FakeClock(datetime(2030, 1, 7, 1, 0, tzinfo=UTC)), Told()
    with running(engine, FAILING, clock=clock, front_end=told, recover=True) as orch:
        for day in (1, 2):
            (schedule,) = list_schedules(engine)  # 03:00 in Berlin is 02:00 UTC in January
            assert schedule.next_fire_at == datetime(2030, 1, 6 + day, 2, 0, tzinfo=UTC)
            clock.set(schedule.next_fire_at)
            until(lambda day=day: [r[1] for r in scheduled_runs(engine)] == ["failed"] * day,
                  what=f"failed run {day}")  # fmt: skip
        until(lambda: told.paused, what="the pause notice")
        (schedule_id, _, reason), *_ = told.paused
        assert schedule_id == "broken_nightly/nightly" and "2 failed runs in a row" in reason
        (schedule,) = list_schedules(engine)
        assert schedule.paused and schedule.paused_by == "opsloop"
        clock.advance(timedelta(days=1))
        orch.sweep()  # a check after the third night's time: paused, it starts nothing
        assert len(scheduled_runs(engine)) == 2
