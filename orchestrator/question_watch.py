"""Questions other processes open, watched here within a second.

Every replica that recovers (`serve`) keeps timers for every open question, not only
for the ones it opened: a deadline or reminder is applied exactly once whoever fires it
(people.py claims it). A question opened elsewhere (another replica, a CLI run) is
learned from the audit log (orchestrator/changes.py) within `POLL_S`, so when the
process that opened it dies, its deadlines and reminders still come on time here,
instead of at the next 30 s sweep.
"""

from __future__ import annotations

from sqlalchemy.engine import Engine

from orchestrator import interactions
from orchestrator.changes import ChangeFeed
from orchestrator.people import People
from storage.engine import read_transaction
from storage.statuses import InteractionStatus

POLL_S = 1.0  # wall seconds between reads of the audit log
OPENED = frozenset({"interaction.opened", "step.interrupted_by_crash"})
CLOSED = frozenset({"interaction.answered", "interaction.deadline"})


class QuestionWatch:
    """Arms the timers of questions other processes open; drops those they close."""

    def __init__(self, engine: Engine, people: People) -> None:
        self._engine = engine
        self._people = people
        self._feed = ChangeFeed(engine)
        self._started = False

    def start(self) -> None:
        """Before the first full look at every open question: later ones come from here."""
        if not self._started:
            self._feed.start_at_end()
            self._started = True

    def poll(self) -> None:
        for change in self._feed.poll():
            iid = change.interaction_id
            if iid is None or change.action not in OPENED | CLOSED:
                continue
            with read_transaction(self._engine) as conn:
                row = interactions.load_interaction(conn, iid)
            if row is None:
                continue
            if row["status"] == InteractionStatus.PENDING:
                self._people.watch(row)
            else:
                self._people.forget(iid)
