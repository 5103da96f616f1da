"""A persisted outbox for chat messages: nothing is lost in an outage, nothing is posted twice.

Front-end events only write rows (fast, from worker threads); one dispatcher
thread per process sends them. Each row's id is the message's idempotency key,
so announcing the same message twice is one row. Edits of one message
coalesce: while an edit waits (or is being sent) more changes only bump the
row's version, and the row is rendered from the current state when it is
sent, so fifty steps finishing at once become one or two `chat.update` calls.

Rows are claimed with a conditional UPDATE, so several replicas can share one
outbox; inserts are INSERT .. ON CONFLICT DO NOTHING, so racing writers never
fail. A row claimed by a process that died is taken over after `LEASE`. A row
whose earlier attempt may have reached Slack is marked `uncertain`: the sender
looks for it in Slack before posting again (see `bot.slack.delivery`).
The dispatcher that sends the rows is `bot.slack.dispatcher`.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, Engine

from storage.engine import read_transaction, write_transaction
from storage.models import OutboxMessage
from storage.statuses import OutboxStatus
from storage.types import utcnow

log = logging.getLogger(__name__)
OUTBOX: sa.Table = OutboxMessage.__table__  # type: ignore[attr-defined]
LEASE = timedelta(seconds=60)
EDIT_INTERVAL = timedelta(seconds=1)  # one edit per message per second (chat.update is Tier 3)
MAX_ATTEMPTS = 60


@dataclass(frozen=True)
class Message:
    id: str
    kind: str
    run_id: str | None
    channel: str | None
    after: str | None
    payload: Mapping[str, Any]
    version: int  # as claimed
    attempts: int
    after_result: Mapping[str, Any] | None = None  # what sending `after` returned (its ts)
    created_at: datetime | None = None
    uncertain: bool = False  # an earlier attempt may have reached Slack: look before posting


@dataclass
class Outbox:
    engine: Engine
    clock: Callable[[], datetime] = utcnow
    wakeup: threading.Event = field(default_factory=threading.Event)

    def post(
        self, key: str, kind: str, *, channel: str | None, run_id: str | None,
        payload: Mapping[str, Any] | None = None, after: str | None = None,
    ) -> None:  # fmt: skip
        """Ask for a new message once: a second call with the same key changes nothing."""
        if self._exists(key):  # the usual case for a board asked for on every step change
            return
        now = self.clock()
        with write_transaction(self.engine) as conn:
            self._insert(conn, self._row(key, kind, channel, run_id, payload, after, now))
        self.wakeup.set()

    def _insert(self, conn: Connection, row: Mapping[str, Any]) -> bool:
        """Insert unless the key exists (atomic on both databases); True if inserted."""
        dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
        stmt = dialect.insert(OUTBOX).values(**row).on_conflict_do_nothing(index_elements=["id"])
        return conn.execute(stmt).rowcount == 1

    def _exists(self, key: str) -> bool:
        """Checked without the writer lock (SQLite has one writer for the whole file)."""
        with read_transaction(self.engine) as conn:
            found = conn.execute(sa.select(OUTBOX.c.id).where(OUTBOX.c.id == key)).first()
        return found is not None

    def edit(
        self, key: str, kind: str, *, channel: str | None, run_id: str | None,
        payload: Mapping[str, Any] | None = None, after: str | None = None,
    ) -> None:  # fmt: skip
        """Ask for an edit: coalesces with a waiting edit, at most one per EDIT_INTERVAL."""
        now = self.clock()
        with write_transaction(self.engine) as conn:
            if not self._insert(conn, self._row(key, kind, channel, run_id, payload, after, now)):
                self._bump(conn, key, payload, now)
        self.wakeup.set()

    @staticmethod
    def _bump(conn: Connection, key: str, payload: Mapping[str, Any] | None, now: datetime) -> None:
        """One more change to an existing edit row; the row is locked, so a dispatcher's
        `sent` cannot slip between our read of its status and our write (PostgreSQL)."""
        row = conn.execute(
            sa.select(OUTBOX.c.status, OUTBOX.c.sent_at).where(OUTBOX.c.id == key).with_for_update()
        ).one()
        values: dict[str, Any] = {"version": OUTBOX.c.version + 1, "attempts": 0}
        if payload is not None:
            values["payload"] = dict(payload)
        if row.status in (OutboxStatus.SENT, OutboxStatus.FAILED):
            last = row.sent_at or now  # aware: storage.types.UtcDateTime
            values.update(status=OutboxStatus.PENDING, not_before=max(now, last + EDIT_INTERVAL))
        conn.execute(sa.update(OUTBOX).where(OUTBOX.c.id == key).values(**values))

    @staticmethod
    def _row(
        key: str, kind: str, channel: str | None, run_id: str | None,
        payload: Mapping[str, Any] | None, after: str | None, now: datetime,
    ) -> dict[str, Any]:  # fmt: skip
        return {
            "id": key, "kind": kind, "channel": channel, "run_id": run_id, "after": after,
            "payload": dict(payload or {}), "status": OutboxStatus.PENDING, "not_before": now,
            "attempts": 0, "version": 0, "created_at": now,
        }  # fmt: skip

    def result(self, key: str) -> Mapping[str, Any] | None:
        """What sending the message returned (channel, ts), once it was sent."""
        with read_transaction(self.engine) as conn:
            return conn.execute(
                sa.select(OUTBOX.c.result).where(OUTBOX.c.id == key)
            ).scalar_one_or_none()

    def due(
        self, limit: int = 100, *, skip: Iterable[str] = (), skip_posts: Iterable[str] = ()
    ) -> list[Message]:
        """Claimable rows whose time has come and whose `after` row was sent, oldest first;
        none of the channels in `skip`, no posts (only edits) to those in `skip_posts`."""
        now = self.clock()
        first = OUTBOX.alias("first")
        ready = sa.or_(OUTBOX.c.after.is_(None), first.c.status == OutboxStatus.SENT)
        channel = sa.func.coalesce(OUTBOX.c.channel, "")
        stmt = (
            sa.select(OUTBOX, first.c.result.label("after_result"))
            .outerjoin(first, first.c.id == OUTBOX.c.after)
            .where(
                OUTBOX.c.status.in_([OutboxStatus.PENDING, OutboxStatus.SENDING]),
                OUTBOX.c.not_before <= now,
                ready,
            )
            .order_by(OUTBOX.c.created_at, OUTBOX.c.id)
            .limit(limit)
        )
        if skip := list(skip):
            stmt = stmt.where(channel.not_in(skip))
        if skip_posts := list(skip_posts):
            stmt = stmt.where(sa.or_(channel.not_in(skip_posts), OUTBOX.c.kind.like("%.update")))
        with read_transaction(self.engine) as conn:
            rows = conn.execute(stmt).mappings().all()
        return [_message(r) for r in rows]

    def claim(self, message: Message, worker: str) -> Message | None:
        """Take the row for sending (pending, or sending whose lease ran out)."""
        now = self.clock()
        with write_transaction(self.engine) as conn:
            won = conn.execute(
                sa.update(OUTBOX)
                .where(
                    OUTBOX.c.id == message.id,
                    OUTBOX.c.version == message.version,
                    OUTBOX.c.status.in_([OutboxStatus.PENDING, OutboxStatus.SENDING]),
                    OUTBOX.c.not_before <= now,
                )
                .values(
                    status=OutboxStatus.SENDING,
                    claimed_by=worker,
                    not_before=now + LEASE,
                    version=OUTBOX.c.version + 1,
                )
            ).rowcount
        if won != 1:
            return None
        return Message(**{**message.__dict__, "version": message.version + 1})

    def sent(self, message: Message, result: Mapping[str, Any] | None) -> None:
        """Record success; an edit asked for meanwhile keeps the row pending."""
        now = self.clock()
        with write_transaction(self.engine) as conn:
            done = conn.execute(
                sa.update(OUTBOX)
                .where(OUTBOX.c.id == message.id, OUTBOX.c.version == message.version)
                .values(
                    status=OutboxStatus.SENT,
                    result=dict(result or {}),
                    sent_at=now,
                    error=None,
                    version=OUTBOX.c.version + 1,
                )
            ).rowcount
            if not done:  # changed while we sent it: send again, after the edit interval
                conn.execute(
                    sa.update(OUTBOX)
                    .where(OUTBOX.c.id == message.id)
                    .values(
                        status=OutboxStatus.PENDING,
                        not_before=now + EDIT_INTERVAL,
                        sent_at=now,
                        result=dict(result or {}),
                    )
                )

    def failed(self, message: Message, error: str, retry_in: float) -> None:
        """Put the row back with a delay, or give up after MAX_ATTEMPTS."""
        attempts = message.attempts + 1
        status = OutboxStatus.FAILED if attempts >= MAX_ATTEMPTS else OutboxStatus.PENDING
        self._release(message, status=status, attempts=attempts, error=error[:2000],
                      not_before=self.clock() + timedelta(seconds=retry_in))  # fmt: skip

    def give_up(self, message: Message, error: str) -> None:
        """Fail the row now: Slack refused it as no retry would change (outbox_failures.py)."""
        self._release(message, status=OutboxStatus.FAILED, attempts=message.attempts + 1,
                      error=error[:2000])  # fmt: skip

    def defer(self, message: Message, seconds: float, reason: str) -> None:
        """Put a claimed row back to wait `seconds` (Slack said 429), not counted as a failure."""
        self._release(message, status=OutboxStatus.PENDING, error=reason[:2000],
                      not_before=self.clock() + timedelta(seconds=seconds))  # fmt: skip

    def _release(self, message: Message, **values: Any) -> None:
        """Hand a claimed row back. An edit asked for while we sent it changed its version:
        the row is still ours (`sending`) and goes back pending all the same, or it would
        wait out its claim's lease."""
        with write_transaction(self.engine) as conn:
            done = conn.execute(
                sa.update(OUTBOX)
                .where(OUTBOX.c.id == message.id, OUTBOX.c.version == message.version)
                .values(**values)
            ).rowcount
            if not done:
                values.pop("attempts", None)  # the edit restarted the count
                if values["status"] == OutboxStatus.FAILED:
                    values["status"] = OutboxStatus.PENDING  # a new edit deserves a try
                conn.execute(
                    sa.update(OUTBOX)
                    .where(OUTBOX.c.id == message.id, OUTBOX.c.status == OutboxStatus.SENDING)
                    .values(**values)
                )

    def backlog(self) -> tuple[int, float]:
        """Messages not sent yet, and how long the oldest has waited (s): the metrics."""
        waiting = OUTBOX.c.status.in_([OutboxStatus.PENDING, OutboxStatus.SENDING])
        with read_transaction(self.engine) as conn:
            count, oldest = conn.execute(
                sa.select(sa.func.count(), sa.func.min(OUTBOX.c.created_at)).where(waiting)
            ).one()
        return count, 0.0 if oldest is None else (self.clock() - oldest).total_seconds()

    def counts(self) -> dict[str, int]:
        with read_transaction(self.engine) as conn:
            stmt = sa.select(OUTBOX.c.status, sa.func.count()).group_by(OUTBOX.c.status)
            rows = conn.execute(stmt)
            return {status: n for status, n in rows}


def _message(row: Mapping[str, Any]) -> Message:
    """A row as the sender sees it; `uncertain` when an earlier attempt may have landed
    (it failed without a clear answer, or its sender died while sending it)."""
    return Message(
        id=row["id"], kind=row["kind"], run_id=row["run_id"], channel=row["channel"],
        after=row["after"], payload=row["payload"], version=row["version"],
        attempts=row["attempts"], after_result=row["after_result"], created_at=row["created_at"],
        uncertain=row["attempts"] > 0 or row["status"] == OutboxStatus.SENDING,
    )  # fmt: skip
