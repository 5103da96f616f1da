"""A row a dead process was sending goes again at once; a live process's claim is kept."""

from __future__ import annotations

import os
import socket
import subprocess
import sys

import sqlalchemy as sa

from bot.slack.outbox import OUTBOX, Outbox
from bot.slack.outbox_claims import free_dead_claims, worker_id


def claimed(outbox: Outbox, key: str, by: str) -> None:
    outbox.post(key, "board.post", channel="C0X", run_id=None)
    [message] = [m for m in outbox.due() if m.id == key]
    assert outbox.claim(message, by) is not None


def test_rows_claimed_by_a_process_that_died_are_due_again_at_once(engine: sa.Engine) -> None:
    outbox = Outbox(engine)
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)  # fmt: skip
    dead = f"{socket.gethostname()[:40]}/{gone.stdout.strip()}/deadbeef"
    claimed(outbox, "board:dead", dead)
    claimed(outbox, "board:alive", worker_id())  # this process: still sending it
    claimed(outbox, "board:elsewhere", f"other-host/{os.getpid()}/cafe0000")
    assert {m.id for m in outbox.due()} == set()  # all wait out their claim's lease

    assert free_dead_claims(outbox) == 1
    [again] = outbox.due()
    assert (again.id, again.uncertain) == ("board:dead", True)  # looked up before re-posted
    with engine.connect() as conn:
        rows = dict(conn.execute(sa.select(OUTBOX.c.id, OUTBOX.c.status)).all())
    assert rows == {"board:dead": "sending", "board:alive": "sending",
                    "board:elsewhere": "sending"}  # fmt: skip
