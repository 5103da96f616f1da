"""Which process runs a step: leases, so several replicas can share one database.

A process that starts a step writes its `replica_id` into `step_run.owner` and
keeps `lease_until` in the future with a heartbeat. Recovery (at start and in a
periodic sweep) takes over a `running` step only when its owner stopped
renewing, or is a process on this host that no longer exists. The takeover is a
conditional UPDATE, so exactly one replica recovers a step.
"""

from __future__ import annotations

import os
import socket
import threading
import uuid
from collections.abc import Collection
from datetime import datetime, timedelta
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from orchestrator import runs
from storage.engine import read_transaction, write_transaction
from storage.statuses import StepStatus

LEASE = timedelta(seconds=30)
HEARTBEAT_S = LEASE.total_seconds() / 3
_takeovers = [0]  # running steps this process took over from a gone owner; a metric
_takeovers_lock = threading.Lock()


def takeovers() -> int:
    """How many running steps this process took over (read at scrape time)."""
    return _takeovers[0]


def replica_id() -> str:
    """host/pid/incarnation: unique per process start, and says where it ran."""
    return f"{socket.gethostname()}/{os.getpid()}/{uuid.uuid4().hex[:8]}"


def dead_here(owner: str) -> bool:
    """True if `owner` ran on this host in a process that is gone (a crash, a SIGKILL)."""
    host, _, rest = owner.partition("/")
    pid = rest.partition("/")[0]
    if host != socket.gethostname() or not pid.isdigit() or int(pid) == os.getpid():
        return False
    return _gone(int(pid)) or _zombie(int(pid))


def _gone(pid: int) -> bool:
    """No process has this pid (signal 0 finds none)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # someone else's: alive, unless a zombie
        pass
    return False


def _zombie(pid: int) -> bool:
    """Dead, its exit status not collected: a replica whose parent is gone too, under an
    init that does not reap orphans (some containers' pid 1), stays so for good."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:  # no /proc here (macOS, BSD), hidden (hidepid=2), or gone since: only
        return _gone(pid)  # signal 0 tells which; alive as far as we can tell, the lease decides
    return stat.rpartition(")")[2].split()[:1] in (["Z"], ["X"])  # after "pid (command)"


def claim_orphan(engine: Engine, me: str, run_id: str, step_id: str, now: datetime) -> bool:
    """Take a `running` step whose owner is gone; False if a live process still runs it."""
    steps = runs.STEPS
    where = (steps.c.run_id == run_id, steps.c.step_id == step_id,
             steps.c.status == StepStatus.RUNNING)  # fmt: skip
    with read_transaction(engine) as conn:
        row = conn.execute(sa.select(steps.c.owner, steps.c.lease_until).where(*where)).first()
    if row is None:
        return False
    owner, lease_until = row
    if owner == me:
        return False  # running in this process right now
    expired = lease_until is None or lease_until <= now
    if owner is not None and not expired and not dead_here(owner):
        return False
    same_owner = steps.c.owner.is_(None) if owner is None else steps.c.owner == owner
    with write_transaction(engine) as conn:
        won = (
            conn.execute(
                sa.update(steps)
                .where(*where, same_owner)
                .values(owner=me, lease_until=now + LEASE, version=steps.c.version + 1)
            ).rowcount
            == 1
        )
    if won:
        with _takeovers_lock:
            _takeovers[0] += 1
    return won


Key = tuple[str, str]  # (run id, step id)


def release(
    engine: Engine, me: str, now: datetime, keep: Collection[Key] = (),
    only: Collection[Key] | None = None,
) -> int:  # fmt: skip
    """End the leases of the steps this process no longer runs (a graceful stop killed or
    cut them off), all (or `only` those) but `keep` (still running: a python step cannot
    be killed): another replica's sweep, or this one's restart, takes them over at once."""
    steps = runs.STEPS
    if only is not None and not only:
        return 0
    where = [] if only is None else [_among(only)]
    if keep:
        where.append(sa.not_(_among(keep)))
    with write_transaction(engine) as conn:
        return conn.execute(
            sa.update(steps)
            .where(steps.c.owner == me, steps.c.status == StepStatus.RUNNING, *where)
            .values(lease_until=now)
        ).rowcount


def renew(engine: Engine, me: str, now: datetime, only: Collection[Key] | None = None) -> int:
    """Push the leases of every step this process runs, or of `only` those; the heartbeat."""
    steps = runs.STEPS
    if only is not None and not only:
        return 0
    with write_transaction(engine) as conn:
        return conn.execute(
            sa.update(steps)
            .where(
                steps.c.owner == me,
                steps.c.status == StepStatus.RUNNING,
                *([] if only is None else [_among(only)]),
            )
            .values(lease_until=now + LEASE)
        ).rowcount


def _among(keys: Collection[Key]) -> sa.ColumnElement[bool]:
    steps = runs.STEPS
    return sa.or_(*(sa.and_(steps.c.run_id == run_id, steps.c.step_id == step_id)
                    for run_id, step_id in keys))  # fmt: skip


def ownership(me: str, now: datetime) -> dict[str, object]:
    """The columns a step gets when this process starts running it."""
    return {"owner": me, "lease_until": now + LEASE}
