"""Deadlines and reminders as APScheduler jobs, rebuilt from the database at every start.

The database is the truth: each pending interaction's `deadline` and
`next_reminder_at` columns. The scheduler only holds jobs derived from them,
so a restart loses nothing, and a deadline that passed while the process was
down fires as soon as the jobs are rebuilt. Applying a deadline is a
conditional UPDATE (see `Orchestrator.expire`), so it happens exactly once
even if a person answers in the same instant or two replicas both fire.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from apscheduler.jobstores.base import JobLookupError
from apscheduler.schedulers.background import BackgroundScheduler


def aware(moment: datetime) -> datetime:
    # SQLite hands back naive datetimes; we only ever store UTC.
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


class Timers:
    """Owns the scheduler; calls `on_deadline(iid)` and `on_reminder(iid)` on its own threads."""

    def __init__(
        self,
        on_deadline: Callable[[str], None],
        on_reminder: Callable[[str], None],
        on_escalation: Callable[[str], None] | None = None,
    ) -> None:
        self._on_deadline = on_deadline
        self._on_reminder = on_reminder
        self._on_escalation = on_escalation
        self._scheduler = BackgroundScheduler(
            timezone=UTC,
            job_defaults={"misfire_grace_time": None, "coalesce": True, "max_instances": 1},
        )

    def start(self) -> None:
        self._scheduler.start()

    def shutdown(self) -> None:
        if self._scheduler.running:
            self._scheduler.shutdown(wait=False)

    def watch(self, row: Mapping[str, Any], now: datetime) -> None:
        """Schedule the deadline and reminders of one pending interaction."""
        iid = row["id"]
        if row["deadline"] is not None:
            self._scheduler.add_job(
                self._on_deadline, "date", run_date=aware(row["deadline"]), args=[iid],
                id=f"deadline:{iid}", replace_existing=True,
            )  # fmt: skip
        if self._on_escalation and row.get("escalate_at") and not row.get("escalated_at"):
            self._scheduler.add_job(
                self._on_escalation, "date", run_date=aware(row["escalate_at"]), args=[iid],
                id=f"escalate:{iid}", replace_existing=True,
            )  # fmt: skip
        every = row["remind_every_s"]
        if every:
            first = aware(row["next_reminder_at"] or now + timedelta(seconds=every))
            self._scheduler.add_job(
                self._on_reminder, "interval", seconds=every, start_date=first, args=[iid],
                id=f"remind:{iid}", replace_existing=True,
            )  # fmt: skip

    def every(self, seconds: float, job: Callable[[], None], job_id: str) -> None:
        """Run `job` every `seconds` on the scheduler's threads (heartbeats, sweeps)."""
        self._scheduler.add_job(job, "interval", seconds=seconds, id=job_id,
                                replace_existing=True)  # fmt: skip

    def forget(self, iid: str) -> None:
        """Drop the jobs of an interaction that closed."""
        for job_id in (f"deadline:{iid}", f"remind:{iid}", f"escalate:{iid}"):
            with contextlib.suppress(JobLookupError):
                self._scheduler.remove_job(job_id)

    def job_ids(self) -> list[str]:
        return [job.id for job in self._scheduler.get_jobs()]
