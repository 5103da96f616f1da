"""Slack requests already accepted, remembered in the database so replicas agree.

A signed request stays valid for Slack's five-minute window: anyone who copies one
(a proxy log, a shared screen) could send it again and start the same run again.
The signature is unique per request, so the first replica to store it wins and every
later copy, to any replica, is refused.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from storage.engine import dialect_insert, write_transaction
from storage.models import SeenRequest

WINDOW = timedelta(minutes=5)  # slack_sdk's SignatureVerifier accepts requests this old
SEEN: sa.Table = SeenRequest.__table__  # type: ignore[attr-defined]
PRUNE_EVERY = 200  # delete expired signatures once per this many requests


class ReplayLedger:
    """`first_time(signature)`: True once per signature within the window."""

    def __init__(self, engine: Engine, now: Callable[[], datetime]) -> None:
        self._engine, self._now = engine, now
        self._count = 0

    def first_time(self, signature: str) -> bool:
        now = self._now()
        self._count += 1  # a lost increment only delays a prune
        with write_transaction(self._engine) as conn:
            if self._count % PRUNE_EVERY == 1:
                conn.execute(sa.delete(SEEN).where(SEEN.c.seen_at < now - WINDOW * 2))
            inserted = conn.execute(
                dialect_insert(conn)(SEEN).values(signature=signature[:100], seen_at=now)
                .on_conflict_do_nothing().returning(SEEN.c.signature)
            ).first()  # fmt: skip
        return inserted is not None
