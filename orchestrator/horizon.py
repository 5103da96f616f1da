"""Timers only for what falls due soon: the rest of what waits stays in the database.

A process that serves the database (`serve`, `resume`) does not arm a timer per open
question. Every `RELOAD` of clock time it reads the pending interactions with a
deadline, reminder or escalation before the end of the window (`WINDOW` from now) and
arms those; a question opened meanwhile is armed at once only if it falls due inside
the window already loaded, and otherwise the load that reaches its time arms it (a
question due soon that another process opened is loaded at once on PostgreSQL, which
tells of it by NOTIFY, and at the next load elsewhere). So
start-up time and memory follow what is due in the next minutes, not how many runs
wait. The load is itself a timer on the runtime's clock: a test's clock that jumps
days ahead loads the window at the new present, and what fell due fires once.

Until `load` first runs (short-lived commands never call it), every timer is armed:
such a process watches only the runs it acts on.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa

from orchestrator import interactions
from orchestrator.notices import Listener
from orchestrator.services import Services
from orchestrator.timers import Timers
from storage.engine import read_transaction
from storage.statuses import InteractionStatus

WINDOW = timedelta(minutes=2)  # how far ahead timers are held in memory
RELOAD = timedelta(minutes=1)  # how often the window moves on; below WINDOW, so no gap
# What arming a question's timers reads (people.watch): not its JSON columns.
TIMES = ("id", "deadline", "escalate_at", "escalated_at", "remind_every_s", "next_reminder_at")
JOB_ID = "horizon"
DUE_SOON = "due"  # the notice: a question falling due soon was opened


class Horizon:
    """The window of clock time whose timers this process holds."""

    def __init__(
        self, services: Services, timers: Timers, *,
        arm: Callable[[Mapping[str, Any]], None], expire: Callable[[str], None],
        listener: Listener | None = None,
    ) -> None:  # fmt: skip
        self._services = services
        self._timers = timers
        self._arm = arm  # set the timers of one pending interaction (those in the window)
        self._expire = expire  # apply a deadline that already passed
        self._lock = threading.Lock()
        self._until: datetime | None = None  # None: not loading, every timer is armed
        self._stopped = False
        # PostgreSQL: another process opened a question due soon (people.park): load now.
        self._listener = listener or Listener(services.engine, services.replica)
        self._listener.on(DUE_SOON, self.load)

    def covers(self, moment: datetime) -> bool:
        """Whether a timer at `moment` is held now (else a later load arms it)."""
        with self._lock:
            return self._until is None or moment <= self._until

    def load(self) -> None:
        """Arm the timers falling due before now + WINDOW; apply deadlines already past."""
        now = self._services.clock.now()
        until = now + WINDOW
        with self._lock:
            if self._stopped:
                return
            if self._until is None:  # the first load: this process serves the database
                self._timers.on_shutdown(self._listener.stop)
                self._listener.start()
            # Before the read: a question committed after it is armed by whoever opened it.
            self._until = until if self._until is None else max(self._until, until)
        with read_transaction(self._services.engine) as conn:
            rows = due_interactions(conn, until)
        for row in rows:
            if row["deadline"] is not None and row["deadline"] <= now:
                self._expire(row["id"])
            else:
                self._arm(row)
        with self._lock:
            if not self._stopped:
                self._timers.at(now + RELOAD, JOB_ID, self.load)

    def stop(self) -> None:
        """Load no more (a graceful stop): what waits is left to the next process."""
        with self._lock:
            self._stopped = True
        self._timers.cancel(JOB_ID)
        self._listener.stop()

    @staticmethod
    def due_soon(row: Mapping[str, Any], now: datetime) -> bool:
        """Whether a question just opened falls due within a window from `now`: then
        the processes that serve the database are told to load theirs (notices.py)."""
        every = row["remind_every_s"]
        times = [row["deadline"], row["escalate_at"], row["next_reminder_at"],
                 now + timedelta(seconds=every) if every else None]  # fmt: skip
        return any(t is not None and t <= now + WINDOW for t in times)


def due_interactions(conn: sa.Connection, until: datetime) -> list[Mapping[str, Any]]:
    """Pending interactions with a deadline, reminder or escalation at or before `until`
    (each term is read by its own index: migration 0013)."""
    table = interactions.INTERACTIONS
    pending = table.c.status == InteractionStatus.PENDING
    terms = [
        table.c.deadline <= until,
        table.c.next_reminder_at <= until,
        # Written before reminders were claimed: remind from now (people.watch).
        sa.and_(table.c.next_reminder_at.is_(None), table.c.remind_every_s.is_not(None)),
        sa.and_(table.c.escalate_at <= until, table.c.escalated_at.is_(None)),
    ]
    ids = sa.union(*(sa.select(table.c.id).where(term, pending) for term in terms)).subquery()
    columns = [table.c[name] for name in TIMES]
    stmt = sa.select(*columns).where(table.c.id.in_(sa.select(ids.c.id)), pending)
    return list(conn.execute(stmt.order_by(table.c.created_at)).mappings())
