"""What other processes changed, read from the audit log.

Every change a person or a process cares about (a run started or ended, a question
opened, answered or expired) is audited in the transaction that makes it, whichever
process made it: a CLI command, another replica, a schedule. So the audit log is a
feed: a replica that reads the entries it has not seen yet learns of every such change,
with one indexed query on the primary key. `serve` uses it to watch the questions other
processes open (their deadlines and reminders) and to bring Slack up to date: one
`ChangeWatch` reads it for both.

Ids come from a sequence taken before the commit, so on PostgreSQL an entry may become
visible after one with a larger id: an id skipped over is looked for again for `GAP_S`
seconds (a rolled-back insert leaves a gap for good).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from storage.engine import read_transaction, single_reads
from storage.models import AuditEntry

log = logging.getLogger(__name__)
AUDIT: sa.Table = AuditEntry.__table__  # type: ignore[attr-defined]
GAP_S = 10.0  # how long a missing id is waited for (a transaction that has not committed)
NOTIFIED_POLL_S = 5.0  # PostgreSQL: polls only catch a lost notice (notices.py, migration 0020)
BATCH = 500


@dataclass(frozen=True)
class Change:
    id: int
    action: str
    run_id: str | None
    interaction_id: str | None


class ChangeFeed:
    """Audit entries this reader has not returned yet, oldest first, each once."""

    def __init__(self, engine: Engine, monotonic: Callable[[], float] = time.monotonic) -> None:
        self._engine = engine
        self._monotonic = monotonic
        self._floor: int | None = None  # every id up to here was returned or given up
        self._above: set[int] = set()  # ids above the floor already returned
        self._missing: dict[int, float] = {}  # ids skipped over -> when first missed
        self._lock = threading.Lock()

    def start_at_end(self, lookback: timedelta | None = None, most: int = 5000) -> None:
        """Skip what is already there (the reader looks at the current state itself), but
        for the entries of the last `lookback` before the newest one (clock-independent),
        `most` of them at most."""
        with read_transaction(self._engine) as conn:
            last, newest = conn.execute(
                sa.select(sa.func.max(AUDIT.c.id), sa.func.max(AUDIT.c.at))
            ).one()
            floor = last or 0
            if lookback is not None and newest is not None:
                first = conn.execute(
                    sa.select(sa.func.min(AUDIT.c.id)).where(AUDIT.c.at >= newest - lookback)
                ).scalar()
                floor = max((first or 1) - 1, floor - most)
        with self._lock:
            self._floor = floor

    def poll(self) -> list[Change]:
        """The entries committed since the last poll (and late ones within GAP_S)."""
        with self._lock:
            if self._floor is None:
                self._floor = 0
            new: list[Change] = []
            if self._missing:  # rare: a transaction that committed after a later one
                late = self._read(AUDIT.c.id.in_(list(self._missing)))
                new.extend(late)
                self._above.update(r.id for r in late)
                for row in late:  # found: not looked for again while a lower one is missing
                    del self._missing[row.id]
            while True:
                top = max(self._above, default=self._floor)
                rows = self._read(AUDIT.c.id > top, BATCH)
                new.extend(rows)
                self._above.update(r.id for r in rows)
                self._advance()
                if len(rows) < BATCH:
                    return sorted(new, key=lambda change: change.id)

    def _read(self, where: sa.ColumnElement[bool], limit: int | None = None) -> list[Change]:
        cols = (AUDIT.c.id, AUDIT.c.action, AUDIT.c.run_id, AUDIT.c.interaction_id)
        with single_reads(self._engine) as conn:  # one statement: one round trip
            rows = conn.execute(sa.select(*cols).where(where).order_by(AUDIT.c.id).limit(limit))
            return [Change(*row) for row in rows]

    def _advance(self) -> None:
        """Move the floor over returned ids and over gaps waited for long enough."""
        assert self._floor is not None
        if not self._above:
            return
        now, top = self._monotonic(), max(self._above)
        for gap in range(self._floor + 1, top):
            if gap not in self._above:
                self._missing.setdefault(gap, now)
        while self._floor < top:
            nxt = self._floor + 1
            if nxt in self._above:
                self._above.discard(nxt)
            elif now - self._missing.get(nxt, now) < GAP_S:
                break
            self._missing.pop(nxt, None)
            self._floor = nxt


Subscriber = Callable[[list[Change]], None]


class ChangeWatch:
    """The one reader of the change feed in a process, and the parts told of what it reads:
    the question watch (question_watch.py) and, in `serve` with Slack, the reconciler
    (bot/slack/reconciler.py). One indexed query per poll, however many subscribe.

    Subscribe before `start()`: the feed starts at the end of the audit log, less the
    longest `lookback` a subscriber asked for. `poll()` runs on a timer and, on PostgreSQL,
    when a notice says the audit log grew (notices.py); a subscriber that raises is logged
    and the others are still told.
    """

    def __init__(self, engine: Engine) -> None:
        self.feed = ChangeFeed(engine)
        self._subscribers: list[Subscriber] = []
        self._lookback: timedelta | None = None
        self._every_s = NOTIFIED_POLL_S
        self._started = False
        self._lock = threading.Lock()

    def subscribe(
        self, subscriber: Subscriber, lookback: timedelta | None = None, every_s: float = 1.0
    ) -> None:
        """Call `subscriber(changes)` after each poll that found some; it wants a poll at
        least every `every_s` s where no notice comes."""
        with self._lock:
            self._subscribers.append(subscriber)
            self._every_s = min(self._every_s, every_s)
            if lookback is not None:
                self._lookback = max(lookback, self._lookback or lookback)

    def every_s(self, notified: bool) -> float:
        """How often to poll: what the subscribers want, or, where a notice says that the
        log grew (PostgreSQL), `NOTIFIED_POLL_S`: a fallback for a notice lost."""
        with self._lock:
            return NOTIFIED_POLL_S if notified else self._every_s

    def start(self) -> None:
        """Skip what the audit log already holds (but the lookback); once."""
        with self._lock:
            if self._started:
                return
            self._started = True
            lookback = self._lookback
        self.feed.start_at_end(lookback)

    def poll(self) -> int:
        """Read the feed once and tell every subscriber; how many changes were read."""
        changes = self.feed.poll()
        if changes:
            with self._lock:
                subscribers = list(self._subscribers)
            for subscriber in subscribers:
                try:
                    subscriber(changes)
                except Exception:  # the others are still told; the periodic sweeps catch up
                    log.exception("a change subscriber failed on %d change(s)", len(changes))
        return len(changes)
