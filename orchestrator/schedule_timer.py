"""Schedules fire on the runtime's clock: one timer, set for the soonest due schedule.

The database stays the truth (orchestrator/schedules.py, schedule_firing.py): the timer
only says when to look. At start the schedules in the workflow files are synced and
what is due fires; after each check the timer is set again for the next due time. The
engine's sweep checks too, so a schedule resumed or edited by another process is seen
within a sweep period even if this process's timer was set for later.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from orchestrator import schedule_firing, schedules
from orchestrator.protocol import RunView
from orchestrator.runs import SYSTEM
from orchestrator.services import Services
from orchestrator.timers import Timers

log = logging.getLogger(__name__)
JOB_ID = "schedules"


class ScheduleTimer:
    def __init__(
        self, services: Services, timers: Timers, *,
        started: Callable[[str], None], cancelled: Callable[[str], None],
    ) -> None:  # fmt: skip
        self._services = services
        self._timers = timers
        self._started = started  # a scheduled run was committed: tell and advance it
        self._cancelled = cancelled  # overlap: cancel_previous cancelled this run

    def start(self, *, prune: bool) -> None:
        """Sync the schedules from the workflow files (`prune`: disable those the files
        no longer have), fire what is due, set the timer."""
        changes = schedules.sync(
            self._services.engine, self._services.versions.current,
            self._services.clock.now(), SYSTEM, prune=prune,
        )  # fmt: skip
        for change in changes:
            log.info("schedule %s %s %s", change.schedule_id, change.action,
                     ", ".join(change.fields))  # fmt: skip
        self.check()

    def check(self) -> None:
        """Fire every due schedule, then set the timer for the next due time."""
        now = self._services.clock.now()
        fires = schedule_firing.fire_due(
            self._services.engine, self._services.versions.current, now,
            started=self._started, cancelled=self._cancelled,
        )  # fmt: skip
        # Optional for a front end (metrics and tracing listen): its run started at `now`.
        told = getattr(self._services.front_end, "schedule_started", None)
        for fire in fires:
            if told is not None and fire.outcome == "started" and fire.ran_for is not None:
                told(fire.schedule_id, fire.ran_for, now)
            log.info("schedule %s due %s: %s %s", fire.schedule_id, fire.due.isoformat(),
                     fire.outcome, fire.run_id or "",
                     extra={"schedule_id": fire.schedule_id, "run_id": fire.run_id})  # fmt: skip
        following = schedules.next_due(self._services.engine)
        if following is None:
            self._timers.cancel(JOB_ID)
        else:
            self._timers.at(following, JOB_ID, self.check)

    def run_now(self, schedule_id: str, by: str) -> str:
        """Start a schedule's run now (`opsloop schedules run`), audited as `by`'s."""
        return schedule_firing.run_now(
            self._services.engine, self._services.versions.current, schedule_id, by,
            self._services.clock.now(), started=self._started,
        )  # fmt: skip

    def run_finished(self, run: RunView) -> None:
        """Count a scheduled run's failures; a schedule that pauses says so in its channel."""
        if not run.started_by.startswith(schedules.ACTOR_PREFIX):
            return  # a person's run: no transaction spent finding that out
        notice = schedules.run_finished(self._services.engine, run.id, self._services.clock.now())
        if notice is not None:
            self._services.front_end.schedule_paused(notice.schedule_id, notice.channel,
                                                     notice.reason)  # fmt: skip
