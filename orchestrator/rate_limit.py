"""Starts per person: at most `count` runs per `per_s` seconds (OPSLOOP_RATE_LIMIT).

Counted from the audit log's `run.started` entries, so the limit holds across replicas
and restarts without a table of its own; the count and the new run's insert share one
transaction. Concurrent starts by one person are serialized: SQLite's writers are
anyway, and on PostgreSQL the transaction first takes an advisory lock on the person
(without it, a burst of 30 at a 20/min limit let 24 through).
"""

from __future__ import annotations

import hashlib
import math
import re
from dataclasses import dataclass
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from orchestrator import runs
from orchestrator.errors import RateLimited

_UNITS = {"s": 1, "sec": 1, "min": 60, "m": 60, "h": 3600, "hour": 3600}
_FORM = re.compile(r"\s*(\d+)\s*/\s*(\d*)\s*([a-z]+)\s*")


@dataclass(frozen=True)
class RateLimit:
    count: int
    per_s: int

    @classmethod
    def parse(cls, text: str) -> RateLimit | None:
        """ "20/min", "100/h", "5/30s"; empty: no limit. ValueError says how to write it."""
        if not text.strip():
            return None
        match = _FORM.fullmatch(text.lower())
        if match is None or match[3] not in _UNITS or int(match[1]) < 1:
            raise ValueError(f"{text!r} is not a rate; write starts/period, like 20/min, "
                             "100/h or 5/30s")  # fmt: skip
        return cls(int(match[1]), int(match[2] or 1) * _UNITS[match[3]])

    def check(self, conn: Connection, actor: str, now: datetime) -> None:
        """Raise RateLimited if `actor` has used up their starts for now."""
        if conn.dialect.name == "postgresql":
            conn.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": _lock_key(actor)})
        since = now - timedelta(seconds=self.per_s)
        audit = runs.AUDIT
        times = conn.execute(
            sa.select(audit.c.at).where(audit.c.actor == actor, audit.c.action == "run.started",
                                        audit.c.at > since)
            .order_by(audit.c.at.desc()).limit(self.count)
        ).scalars().all()  # fmt: skip
        if len(times) < self.count:
            return
        wait = max(1, math.ceil((times[-1] - since).total_seconds()))
        raise RateLimited(f"slow down: you started {self.count} runs in the last "
                          f"{self.per_s} s; retry in {wait} s", wait)  # fmt: skip


def _lock_key(actor: str) -> int:
    """The advisory lock (a signed 64-bit number) that one person's starts take in turn."""
    digest = hashlib.sha256(f"opsloop.rate_limit:{actor}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)
