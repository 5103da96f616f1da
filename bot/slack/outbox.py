"""A persisted outbox for chat messages: nothing is lost in an outage, nothing is posted twice.

Front-end events only write rows (fast, from worker threads); one dispatcher
thread per process sends them. Each row's id is the message's idempotency key,
so announcing the same message twice is one row. Edits of one message
coalesce: while an edit waits (or is being sent) more changes only bump the
row's version, and the row is rendered from the current state when it is
sent, so fifty steps finishing at once become one or two `chat.update` calls.

Rows are claimed with a conditional UPDATE, so several replicas can share one
outbox. A row claimed by a process that died is taken over after `LEASE`; only
a post cut off between Slack accepting it and us recording that can repeat.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

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
            if conn.execute(sa.select(OUTBOX.c.id).where(OUTBOX.c.id == key)).first() is None:
                conn.execute(sa.insert(OUTBOX).values(self._row(key, kind, channel, run_id,
                                                                payload, after, now)))  # fmt: skip
        self.wakeup.set()

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
            row = conn.execute(sa.select(OUTBOX).where(OUTBOX.c.id == key)).mappings().first()
            if row is None:
                conn.execute(sa.insert(OUTBOX).values(self._row(key, kind, channel, run_id,
                                                                payload, after, now)))  # fmt: skip
            else:
                values: dict[str, Any] = {"version": OUTBOX.c.version + 1, "attempts": 0}
                if payload is not None:
                    values["payload"] = dict(payload)
                if row["status"] in (OutboxStatus.SENT, OutboxStatus.FAILED):
                    last = row["sent_at"] or now  # aware: storage.types.UtcDateTime
                    values.update(status=OutboxStatus.PENDING,
                                  not_before=max(now, last + EDIT_INTERVAL))  # fmt: skip
                conn.execute(sa.update(OUTBOX).where(OUTBOX.c.id == key).values(**values))
        self.wakeup.set()

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

    def due(self, limit: int = 100) -> list[Message]:
        """Claimable rows whose time has come and whose `after` row was sent, oldest first."""
        now = self.clock()
        first = OUTBOX.alias("first")
        ready = sa.or_(OUTBOX.c.after.is_(None), first.c.status == OutboxStatus.SENT)
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
        with read_transaction(self.engine) as conn:
            rows = conn.execute(stmt).mappings().all()
        return [
            Message(
                id=r["id"],
                kind=r["kind"],
                run_id=r["run_id"],
                channel=r["channel"],
                after=r["after"],
                payload=r["payload"],
                version=r["version"],
                attempts=r["attempts"],
                after_result=r["after_result"],
            )
            for r in rows
        ]

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
        now = self.clock()
        attempts = message.attempts + 1
        status = OutboxStatus.FAILED if attempts >= MAX_ATTEMPTS else OutboxStatus.PENDING
        with write_transaction(self.engine) as conn:
            conn.execute(
                sa.update(OUTBOX)
                .where(OUTBOX.c.id == message.id, OUTBOX.c.version == message.version)
                .values(
                    status=status,
                    attempts=attempts,
                    error=error[:2000],
                    not_before=now + timedelta(seconds=retry_in),
                )
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


Send = Callable[[Message], Mapping[str, Any] | None]


class Dispatcher:
    """One thread that sends due outbox rows; `send` raises to have a row retried later."""

    def __init__(self, outbox: Outbox, send: Send, *, poll_s: float = 0.5) -> None:
        self.outbox = outbox
        self.send = send
        self.poll_s = poll_s
        self.worker = f"w-{uuid.uuid4().hex[:8]}"
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="opsloop-outbox", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        self.outbox.wakeup.set()
        if self._thread.is_alive():
            self._thread.join(timeout)

    def flush(self, timeout: float) -> bool:
        """Before stopping: let the dispatcher send what is due, for up to `timeout` s.
        True if nothing due was left (a message waiting out a rate limit stays queued)."""
        deadline = time.monotonic() + timeout
        while self.outbox.due(limit=1):
            if time.monotonic() >= deadline or not self._thread.is_alive():
                return False
            self.outbox.wakeup.set()
            self._stop.wait(0.05)
        return True

    def _loop(self) -> None:
        while not self._stop.is_set():
            self.outbox.wakeup.clear()
            try:
                busy = self.drain()
            except Exception:  # the database is away: keep the thread, try again soon
                log.exception("outbox: could not read due messages")
                self._stop.wait(5.0)
                continue
            if not busy:
                self.outbox.wakeup.wait(self.poll_s)

    def drain(self) -> bool:
        """Send what is due now; True if anything was sent."""
        busy = False
        for message in self.outbox.due():
            if self._stop.is_set():
                break
            claimed = self.outbox.claim(message, self.worker)
            if claimed is None:
                continue
            busy = True
            try:
                result = self.send(claimed)
            except Exception as exc:
                delay = min(2 ** min(claimed.attempts, 6), 60)
                log.warning("outbox: %s failed (%s); retry in %s s", claimed.id, exc, delay)
                self.outbox.failed(claimed, f"{type(exc).__name__}: {exc}", delay)
            else:
                self.outbox.sent(claimed, result)
        return busy
