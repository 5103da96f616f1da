"""The Slack inbox: what a command, click or submission asks for, stored before the ack.

Slack never resends a request we acked, so the work it asks for must not wait only in
memory: a listener stores the request's payload here (one short transaction) and only
then acks. The row is inserted already claimed by this process, with a lease; the work
runs after the ack and marks the row done. If the process dies first, a replica (this
one after a restart, or another one) takes the row over once its claimant is a dead
process on this host or its lease ran out, and does the work then.

The row's id is derived from the request (Slack's trigger_id is single use), so a replay
or a redelivery of the same request is one row and is done once. In HTTP mode the
request guard stores every signed request here before Bolt sees it (bot/slack/
request_guard.py): that insert is also the replay check, so durability costs no extra
transaction. Requests no listener stores (events, other apps' commands) are kept as
`done` rows keyed by their signature: a record that refuses their replays.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from bot.slack.scopes import SLASH_COMMAND
from orchestrator.leases import dead_here
from storage.engine import dialect_insert, read_transaction, write_transaction
from storage.models import SlackInbox
from storage.types import utcnow

INBOX: sa.Table = SlackInbox.__table__  # type: ignore[attr-defined]
LEASE = timedelta(seconds=30)  # a request's work takes well under a second; a margin
# Done rows are kept this long (replays, redeliveries, a look), then pruned. Wall time:
# Slack's signatures are (slack_sdk accepts requests for five minutes).
KEEP = timedelta(hours=1)
PRUNE_EVERY = 200  # stored requests between two prunes
OPEN, DONE = "open", "done"
COMMAND, CLICK, VIEW, OTHER = "command", "click", "view", "other"
OURS = "opsloop."  # the prefix of our action ids and modal callback ids (app.py matches it)


@dataclass(frozen=True)
class Request:
    """One stored request: its kind, Slack's payload as Bolt parsed it, and its claim."""

    id: str
    kind: str
    body: Mapping[str, Any]
    attempts: int = 1

    @property
    def recovered(self) -> bool:
        """True when a replica took this over after the one that acked it stopped."""
        return self.attempts > 1


def request_key(kind: str, body: Mapping[str, Any]) -> str:
    """The id of a request: from Slack's single-use trigger_id, or the whole payload."""
    trigger = body.get("trigger_id")
    if trigger:
        team = body.get("team_id") or (body.get("team") or {}).get("id", "")
        basis = f"{kind}|{team}|{trigger}"
    else:
        basis = f"{kind}|{json.dumps(body, sort_keys=True, default=str)}"
    return hashlib.sha256(basis.encode()).hexdigest()


def signature_key(signature: str) -> str:
    """The id of a request no listener stores: its signature, unique per request."""
    return hashlib.sha256(f"{OTHER}|{signature}".encode()).hexdigest()


def kind_of(body: Mapping[str, Any]) -> str:
    """What app.py's listeners store, as they match it: `/ops`, a click on one of our
    buttons (Bolt matches the first action), one of our modals submitted; else OTHER."""
    if "command" in body:
        return COMMAND if body["command"] == SLASH_COMMAND else OTHER
    kind = body.get("type")
    if kind == "block_actions":
        actions = body.get("actions") or [{}]
        return CLICK if str(actions[0].get("action_id", "")).startswith(OURS) else OTHER
    if kind == "view_submission":
        return VIEW if str(body.get("view", {}).get("callback_id", "")).startswith(OURS) else OTHER
    return OTHER


def run_id_for(key: str) -> str:
    """The id of the run a request starts: the same on every attempt, so it starts once."""
    return "r-" + hashlib.sha256(f"run|{key}".encode()).hexdigest()[:10]


def _user(body: Mapping[str, Any]) -> str | None:
    user = body.get("user")
    return user.get("id") if isinstance(user, Mapping) else body.get("user_id")


def _channel(body: Mapping[str, Any]) -> str | None:
    channel = body.get("channel")
    return channel.get("id") if isinstance(channel, Mapping) else body.get("channel_id")


class Inbox:
    """Stores requests before the ack; hands out the ones whose claimant went away."""

    def __init__(self, engine: Engine, now: Callable[[], datetime], owner: str) -> None:
        self._engine, self._now, self.owner = engine, now, owner
        self._count = 0
        self._named: set[str] = set()  # stored by the guard, then taken on by a listener

    def name(self, key: str) -> None:
        """A listener took on the request the guard stored as `key` (before its ack)."""
        self._named.add(key)

    def unnamed(self, key: str) -> bool:
        """Whether no listener took on `key`: Bolt answered without one (refused it, or a
        listener failed before its ack), so the person was told it did not work."""
        try:
            self._named.remove(key)  # set operations are atomic under the GIL
        except KeyError:
            return True
        return False

    def accept(self, kind: str, body: Mapping[str, Any], key: str | None = None) -> Request | None:
        """Store `body`, claimed by this process (an OTHER one as done, without its
        payload); None if this request was stored before."""
        key = key or request_key(kind, body)
        wall, done = utcnow(), kind == OTHER
        row = {"id": key, "kind": kind, "user_id": _user(body), "channel": _channel(body),
               "payload": {} if done else dict(body), "status": DONE if done else OPEN,
               "claimed_by": self.owner, "lease_until": self._now() + LEASE, "attempts": 1,
               "received_at": wall, "finished_at": wall if done else None}  # fmt: skip
        self._count += 1  # a lost increment only delays a prune
        with write_transaction(self._engine) as conn:
            if self._count % PRUNE_EVERY == 1:
                conn.execute(sa.delete(INBOX).where(INBOX.c.status == DONE,
                                                    INBOX.c.finished_at < wall - KEEP))  # fmt: skip
            inserted = conn.execute(
                dialect_insert(conn)(INBOX).values(**row)
                .on_conflict_do_nothing().returning(INBOX.c.id)
            ).first()  # fmt: skip
        return None if inserted is None else Request(key, kind, body)

    def orphans(self, limit: int = 100) -> list[Request]:
        """Claim open rows whose claimant died or whose lease ran out; oldest first."""
        now = self._now()
        with read_transaction(self._engine) as conn:
            rows = conn.execute(
                sa.select(INBOX.c.id, INBOX.c.claimed_by, INBOX.c.lease_until)
                .where(INBOX.c.status == OPEN)
                .order_by(INBOX.c.received_at)
                .limit(limit)
            ).all()  # fmt: skip
        taken = []
        for key, owner, lease_until in rows:
            expired = lease_until is None or lease_until <= now
            if expired or (owner != self.owner and owner is not None and dead_here(owner)):
                request = self._take(key, owner, now)
                if request is not None:
                    taken.append(request)
        return taken

    def _take(self, key: str, owner: str | None, now: datetime) -> Request | None:
        """A conditional UPDATE on the claimant seen: two replicas cannot both win."""
        same = INBOX.c.claimed_by.is_(None) if owner is None else INBOX.c.claimed_by == owner
        with write_transaction(self._engine) as conn:
            row = conn.execute(
                sa.update(INBOX)
                .where(INBOX.c.id == key, INBOX.c.status == OPEN, same)
                .values(claimed_by=self.owner, lease_until=now + LEASE,
                        attempts=INBOX.c.attempts + 1)
                .returning(INBOX.c.kind, INBOX.c.payload, INBOX.c.attempts)
            ).first()  # fmt: skip
        return None if row is None else Request(key, row.kind, row.payload, row.attempts)

    def finish(self, key: str) -> bool:
        """Mark request `key` done; False if another replica took it over meanwhile."""
        with write_transaction(self._engine) as conn:
            return (
                conn.execute(
                    sa.update(INBOX)
                    .where(INBOX.c.id == key, INBOX.c.claimed_by == self.owner,
                           INBOX.c.status == OPEN)
                    .values(status=DONE, finished_at=utcnow())
                ).rowcount
                == 1
            )  # fmt: skip

    def open_count(self) -> int:
        """Rows not done yet (a gauge: work acked and not finished)."""
        with read_transaction(self._engine) as conn:
            return int(
                conn.execute(
                    sa.select(sa.func.count()).select_from(INBOX).where(INBOX.c.status == OPEN)
                ).scalar_one()
            )
