"""Outbox rows a dead process was sending: due again at once, not after the claim's lease.

A sender claims a row for `outbox.LEASE` (a minute). When its process is SIGKILLed, the
row waited out that minute before any process sent it. A claim names the process
(host/pid/incarnation, as step leases do), so a process on the same host sees that the
claimer is gone and makes the row due now; it is marked uncertain (bot/slack/outbox.py),
so the sender looks for it in Slack before posting it again.
"""

from __future__ import annotations

import os
import socket
import uuid

import sqlalchemy as sa

from bot.slack.outbox import OUTBOX, Outbox
from orchestrator.leases import dead_here
from storage.engine import read_transaction, write_transaction
from storage.statuses import OutboxStatus


def worker_id() -> str:
    """This process as an outbox claim names it (fits `claimed_by`, 64 characters)."""
    return f"{socket.gethostname()[:40]}/{os.getpid()}/{uuid.uuid4().hex[:8]}"


def free_dead_claims(outbox: Outbox) -> int:
    """Make the rows that gone processes of this host were sending due now; how many."""
    sending = OUTBOX.c.status == OutboxStatus.SENDING
    with read_transaction(outbox.engine) as conn:
        claims = conn.execute(sa.select(OUTBOX.c.id, OUTBOX.c.claimed_by).where(sending)).all()
    dead = [(key, who) for key, who in claims if who and dead_here(who)]
    if not dead:
        return 0
    now, freed = outbox.clock(), 0
    with write_transaction(outbox.engine) as conn:
        for key, who in dead:
            freed += conn.execute(
                sa.update(OUTBOX)
                .where(OUTBOX.c.id == key, sending, OUTBOX.c.claimed_by == who)
                .values(not_before=now)
            ).rowcount
    if freed:
        outbox.wakeup.set()
    return freed
