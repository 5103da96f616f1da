"""Questions other processes open, watched here within a second.

Every replica that recovers (`serve`) keeps timers for every open question, not only
for the ones it opened: a deadline or reminder is applied exactly once whoever fires it
(people.py claims it). A question opened elsewhere (another replica, a CLI run) is
learned from the audit log (orchestrator/changes.py, whose one reader in the process
tells this watch of what it reads: at once on PostgreSQL, which sends a notice when
the log grows, and within `POLL_S` elsewhere), so when the process that opened it dies,
its deadlines and reminders still come on time here, instead of at the next 30 s sweep.
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from orchestrator import interactions
from orchestrator.changes import Change, ChangeWatch
from orchestrator.people import People
from storage.engine import read_transaction
from storage.statuses import InteractionStatus

POLL_S = 1.0  # wall seconds between reads of the audit log where no notice comes (SQLite)
OPENED = frozenset({"interaction.opened", "step.interrupted_by_crash"})
CLOSED = frozenset({"interaction.answered", "interaction.deadline"})


class QuestionWatch:
    """Arms the timers of questions other processes open; drops those they close."""

    def __init__(self, engine: Engine, people: People, changes: ChangeWatch) -> None:
        self._engine = engine
        self._people = people
        self._changes = changes
        changes.subscribe(self.seen, every_s=POLL_S)

    def start(self) -> None:
        """Before the first full look at every open question: later ones come from here."""
        self._changes.start()

    def poll(self) -> None:
        """Read the change feed now (and tell its other subscribers too)."""
        self._changes.poll()

    def seen(self, changes: list[Change]) -> None:
        """Arm what opened, drop what closed: one read for all the questions opened."""
        opened = {c.interaction_id for c in changes if c.action in OPENED and c.interaction_id}
        for change in changes:  # a closed question is never opened again: nothing to read
            if change.action in CLOSED and change.interaction_id not in opened:
                self._people.forget(change.interaction_id or "")
        if not opened:
            return
        table = interactions.INTERACTIONS
        with read_transaction(self._engine) as conn:
            rows = list(conn.execute(sa.select(table).where(table.c.id.in_(sorted(opened))))
                        .mappings())  # fmt: skip
        for row in rows:
            if row["status"] == InteractionStatus.PENDING:
                self._people.watch(row)
            else:
                self._people.forget(row["id"])
